"""The `vis` command as a user runs it: real subprocesses, JSON output, exit codes, one-line errors."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

KEYS = {"name", "aliases", "type", "layout", "shape", "units", "rf", "rf_size", "rf_stride", "rf_offset"}


def vis(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vistoolbox.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def by_name(rows: list[dict], key: str, value: str) -> dict:
    return next(r for r in rows if value in (r["name"], *r["aliases"]))


def test_layers_json_alexnet():
    proc = vis("layers", "--model", "alexnet", "--weights", "random", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert all(set(r) == KEYS for r in rows)
    conv4 = by_name(rows, "aliases", "conv4")
    assert conv4["rf_size"] == [131, 131] and conv4["rf_stride"] == [16, 16] and conv4["shape"] == [256, 13, 13]
    assert (conv4["layout"], conv4["rf"]) == ("CHW", "exact")
    assert by_name(rows, "aliases", "pool5")["rf_size"] == [195, 195]
    fc6 = by_name(rows, "aliases", "fc6")
    assert fc6["rf_size"] is None and fc6["units"] == 4096 and (fc6["layout"], fc6["rf"]) == ("C", "global")


def test_layers_json_resnet18_includes_containers():
    rows = json.loads(vis("layers", "--model", "resnet18", "--weights", "random", "--json").stdout)
    names = [r["name"] for r in rows]
    assert "layer3.1" in names and "layer3.1.conv1" in names and "" not in names
    assert by_name(rows, "name", "layer4")["rf_stride"] == [32, 32]


def test_layers_user_file_model(tmp_path):
    (tmp_path / "net.py").write_text(
        "import torch.nn as nn\nclass Block(nn.Module):\n"
        "    def __init__(self):\n        super().__init__(); self.conv = nn.Conv2d(3, 8, 5, stride=2)\n"
        "    def forward(self, x):\n        return self.conv(x).relu()\n"
        "def make():\n    return nn.Sequential(Block(), nn.Conv2d(8, 4, 3))\n")
    proc = vis("layers", "--model", f"{tmp_path}/net.py:make", "--weights", "random", "--input-size", "64", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [r["name"] for r in rows] == ["0", "0.conv", "1"]
    assert rows[2]["rf_size"] == [9, 9] and rows[2]["shape"] == [4, 28, 28]


@pytest.mark.hed
def test_layers_json_vgg16_hed(hed_vgg16):
    proc = vis("layers", "--json")  # defaults: vgg16 + hed
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert by_name(rows, "aliases", "conv5_3")["rf_size"] == [196, 196]
    assert by_name(rows, "aliases", "pool5")["rf_size"] == [212, 212]
    assert by_name(rows, "aliases", "conv4")["name"] == "features.21"


@pytest.mark.parametrize("args, code, needle", [
    (["layers", "--model", "alexnett", "--weights", "random"], 2, "did you mean: alexnet"),
    (["layers", "--model", "alexnet", "--weights", "nofile.pt"], 2, "does not exist"),
    (["layers", "--model", "resnet18", "--weights", "hed"], 2, "only for vgg16"),
    (["layers", "--bogus"], 2, "No such option"),
    (["nosuchcommand"], 2, "No such command"),
    (["layers", "--model", "alexnet", "--weights", "random", "--device", "tpu"], 2, "unknown device"),
])
def test_bad_input_one_line_no_traceback(args, code, needle):
    proc = vis(*args)
    assert proc.returncode == code
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_imagenet_unavailable_is_one_line_runtime_error(tmp_path, monkeypatch):
    import os

    env = dict(os.environ, TORCH_HOME=str(tmp_path), HTTPS_PROXY="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9")
    proc = subprocess.run([sys.executable, "-m", "vistoolbox.cli", "layers", "--model", "alexnet", "--weights",
                           "imagenet"], capture_output=True, text=True, timeout=120, env=env)
    if proc.returncode == 0:
        pytest.skip("torchvision's weight host is reachable here; nothing to test")
    assert proc.returncode == 1
    err = [l for l in proc.stderr.splitlines() if l.startswith("vis:")]
    assert len(err) == 1 and "--weights hed" in err[0] and "Traceback" not in proc.stderr


def one_line(proc: subprocess.CompletedProcess) -> str:
    """The single stderr line of a failed command (asserting there is exactly one, and no traceback)."""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def test_output_under_a_file_is_a_usage_error_not_a_traceback(tmp_path):
    (tmp_path / "afile").write_text("a file, not a folder")
    out = tmp_path / "afile" / "unit.png"
    proc = vis("maximize", "--model", "alexnet", "--weights", "random", "--layer", "conv1", "--unit", "0",
               "--steps", "1", "--size", "64", "--quiet", "--out", str(out))
    assert proc.returncode == 2
    assert one_line(proc) == f"vis: error: {str(out)!r} cannot be used: a part of the path is a file, not a folder"


@pytest.mark.parametrize("code, message, status", [
    (28, "no space left on the device", 1), (30, "the file system is read-only", 1), (13, "permission denied", 1)])
def test_environment_failures_are_one_line_runtime_errors(tmp_path, capsys, monkeypatch, code, message, status):
    """Disk full, read-only and forbidden outputs (simulated: as root nothing is forbidden) name the
    output file, never the temp file, in one line with exit 1."""
    import os

    from vistoolbox.cli import main

    def refuse(*args, **kwargs):
        raise OSError(code, os.strerror(code), args[0])
    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(SystemExit) as exit_:
        main(["maximize", "--model", "alexnet", "--weights", "random", "--layer", "conv1", "--unit", "0",
              "--steps", "1", "--size", "64", "--quiet", "--out", str(tmp_path / "unit.png")])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == status and err.count("\n") == 0 and "Traceback" not in err
    assert err.startswith(f"vis: error: cannot use {str(tmp_path / 'unit.png')!r}: {message}") and ".tmp" not in err


def test_debug_keeps_the_traceback(tmp_path, capsys):
    from vistoolbox.cli import main

    (tmp_path / "afile").write_text("")
    with pytest.raises(SystemExit) as exit_:
        main(["--debug", "mine", "--model", "alexnet", "--weights", "random", "--dataset", str(tmp_path),
              "--out", str(tmp_path / "afile" / "run"), "--layers", "conv1", "--quiet"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "Traceback" in err and err.strip().splitlines()[-1].startswith("vis: error:")


def run_main(args: list[str], capsys) -> tuple[int, str, str]:  # noqa: ANN001
    """`vis ARGS` in this process → (exit code, stdout, stderr)."""
    from vistoolbox.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(args)
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err


def test_help_summaries_are_whole_sentences(capsys):
    """`vis --help` shows each command's whole first paragraph, never one cut at "et al." or with "..."."""
    from vistoolbox.cli import vis as group

    code, out, _ = run_main(["--help"], capsys)
    assert code == 0
    listing = " ".join(out.split("Commands:")[1].split())
    for name, command in group.commands.items():
        first = " ".join(command.help.strip().split("\n\n")[0].split())
        assert f"{name} {first}" in listing, name
        assert first.count("(") == first.count(")") and not first.endswith("...")
    assert "Train a feed-forward stylizer (Johnson et al. / Ulyanov et al.) for the STYLE image." in listing


def test_layers_table_never_truncates_names(tmp_path, capsys):
    """Long module paths (a transformer's encoder_layer_0 … _11) print whole, one per row, aligned."""
    long_model = tmp_path / "long.py"
    long_model.write_text(
        "import torch.nn as nn\nfrom collections import OrderedDict\n"
        "def make():\n    return nn.Sequential(OrderedDict([(f'encoder_layer_with_a_very_long_name_{i}', "
        "nn.Conv2d(3 if i == 0 else 4, 4, 3, padding=1)) for i in range(12)]))\n")
    code, out, err = run_main(["layers", "--model", f"{long_model}:make", "--weights", "random",
                               "--input-size", "32"], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert [line.split()[0] for line in lines[1:]] == [f"encoder_layer_with_a_very_long_name_{i}" for i in range(12)]
    columns = {line.index("Conv2d") for line in lines[1:]}
    assert len(columns) == 1 and lines[0].index("type") in columns      # aligned under its header


class _OpensAFile:
    """Unpickling this object creates a file: the marker of code run by loading."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return open, (self.marker, "w")


def test_a_raw_pickle_stylizer_is_one_line_and_never_unpickled(tmp_path):
    """A raw (legacy, not zipped) torch pickle given as a stylizer: one line, exit 2, nothing run (no
    torch warning lines either)."""
    import torch
    from PIL import Image

    marker = tmp_path / "unpickled"
    torch.save({"config": _OpensAFile(str(marker))}, tmp_path / "s.pt", _use_new_zipfile_serialization=False)
    Image.new("RGB", (16, 16)).save(tmp_path / "c.png")
    proc = vis("stylize", str(tmp_path / "s.pt"), str(tmp_path / "c.png"), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2 and not marker.exists()
    line = one_line(proc)
    assert line.startswith(f"vis: error: cannot read '{tmp_path / 's.pt'}' as a stylizer file"), line
