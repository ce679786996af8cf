"""Every `vis` command over a table of bad values — 0, negative, NaN, infinity, huge, the wrong type,
missing paths, a folder for a file, a file for a folder, outputs under a file, and outputs on a full,
read-only or forbidden disk: each must fail with exactly one line on stderr, exit 2 (usage) or 1
(environment), and no traceback. In-process (`vistoolbox.cli.main`) with a tiny model, so the whole
table runs in seconds; tests/test_cli.py has the real-subprocess cases."""
from __future__ import annotations

import errno
import os
import signal
from pathlib import Path

import pytest
from PIL import Image

import vistoolbox.dashboard
from vistoolbox.cli import main
from vistoolbox.limits import max_workers

COUNT = ["0", "-5", "nan", "abc", "1.5"]        # steps, counts: any positive value is valid (time, not memory)
FLOAT = ["-1", "nan", "inf", "-inf", "abc"]
SIZE = ["0", "-5", "abc", "100000"]           # sizes have upper bounds (vistoolbox.limits)


@pytest.fixture(scope="module")
def fx(tmp_path_factory) -> dict[str, str]:
    """A tiny model file, a dataset, style/content images, a complete run, two shard runs and a stylizer."""
    from skimage import data

    root = tmp_path_factory.mktemp("fuzz")
    (root / "tiny.py").write_text(
        "import torch.nn as nn\ndef make():\n    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),\n"
        "                         nn.Conv2d(4, 4, 3, stride=2), nn.ReLU())\n")
    (root / "data").mkdir()
    for i, name in enumerate(["astronaut", "coffee", "chelsea", "rocket"]):
        Image.fromarray(getattr(data, name)()).convert("RGB").resize((40, 36)).save(root / "data" / f"{i}.png")
    Image.fromarray(data.brick()).convert("RGB").resize((32, 32)).save(root / "style.png")
    (root / "afile").write_text("a file, not a folder")
    (root / "empty.png").write_bytes(b"")
    paths = {"root": str(root), "model": f"{root / 'tiny.py'}:make", "data": str(root / "data"),
             "style": str(root / "style.png"), "content": str(root / "data" / "1.png"), "afile": str(root / "afile"),
             "empty": str(root / "empty.png"), "missing": str(root / "missing.png"), "folder": str(root / "data")}
    model = ["--model", paths["model"], "--weights", "random", "--input-size", "32"]
    mine = ["mine", *model, "--dataset", paths["data"], "--layers", "2", "--k", "2", "--batch-size", "2", "--quiet"]
    for out, extra in (("run", []), ("shard0", ["--shard", "0/2"]), ("shard1", ["--shard", "1/2"])):
        run_ok([*mine, "--out", str(root / out), *extra])
    run_ok(["train-stylizer", paths["style"], *model, "--dataset", paths["data"], "--size", "16", "--steps", "1",
            "--batch-size", "1", "--width", "2", "--res-blocks", "0", "--style-layers", "1", "--content-layer", "3",
            "--quiet", "--out", str(root / "s.pt")])
    return {**paths, "run": str(root / "run"), "shard0": str(root / "shard0"), "shard1": str(root / "shard1"),
            "stylizer": str(root / "s.pt")}


def run_ok(args: list[str]) -> None:
    with pytest.raises(SystemExit) as code:
        main(args)
    assert code.value.code == 0, args


def base(command: str, fx: dict[str, str], out: Path) -> list[str]:
    """A valid command line of `command` that does a few milliseconds of work."""
    model = ["--model", fx["model"], "--weights", "random", "--input-size", "32"]
    return {
        "layers": ["layers", *model, "--json"],
        "maximize": ["maximize", *model, "--layer", "2", "--unit", "0", "--steps", "2", "--size", "32", "--quiet",
                     "--out", str(out / "m.png")],
        "dream": ["dream", fx["content"], *model, "--layer", "2", "--steps", "2", "--size", "32", "--quiet",
                  "--out", str(out / "d.png")],
        "mine": ["mine", *model, "--dataset", fx["data"], "--out", str(out / "run"), "--layers", "2", "--k", "2",
                 "--batch-size", "2", "--quiet"],
        "merge": ["merge", fx["shard0"], fx["shard1"], "--out", str(out / "merged"), "--quiet"],
        "texture": ["texture", fx["style"], *model, "--size", "32", "--steps", "2", "--layers", "1", "--quiet",
                    "--out", str(out / "t.png")],
        "transfer": ["transfer", fx["content"], fx["style"], *model, "--size", "32", "--steps", "2",
                     "--content-layer", "3", "--style-layers", "1", "--quiet", "--out", str(out / "x.png")],
        "train-stylizer": ["train-stylizer", fx["style"], *model, "--dataset", fx["data"], "--size", "16",
                           "--steps", "1", "--batch-size", "1", "--width", "2", "--res-blocks", "0",
                           "--style-layers", "1", "--content-layer", "3", "--quiet", "--out", str(out / "s.pt")],
        "stylize": ["stylize", fx["stylizer"], fx["content"], "--out", str(out / "styled"), "--quiet"],
        "dashboard": ["dashboard", *model, "--run", fx["run"], "--cache-dir", str(out / "cache")],
        "export": ["export", fx["run"], "--out", str(out / "site"), "--quiet"],
        "cam": ["cam", fx["content"], *model, "--layer", "2", "--target", "unit:2:0", "--out", str(out / "c.png")],
        "demo": ["demo", *model, "--dataset", fx["data"], "--layers", "2", "--view-units", "1", "--maximize", "2:1",
                 "--maximize-steps", "1", "--maximize-size", "32", "--no-serve",
                 "--quiet", "--out", str(out / "demo")],
    }[command]


#: command → option → bad values (each replaces the option's value in the base command line).
OPTIONS: dict[str, dict[str, list[str]]] = {
    "layers": {"--size": SIZE, "--input-size": SIZE, "--seed": ["-1", "abc", "99999999999999999999"],
               "--layout": ["nope", "=CHW", "2=WHC", "2=NC:0x3", "2=NC:1+4x4", "nope=CHW"]},
    "maximize": {"--unit": ["-1", "abc", "100000"], "--steps": COUNT, "--lr": FLOAT + ["0"], "--size": SIZE,
                 "--decay": FLOAT + ["1"], "--blur-radius": FLOAT + ["1e30"], "--blur-every": ["-1", "abc"],
                 "--norm-pct": FLOAT + ["100"], "--contrib-pct": FLOAT, "--pad": ["-1", "100000"],
                 "--jitter": ["-1", "100000"], "--diversity": FLOAT, "--input-size": SIZE, "--neuron": ["99,99", "a,b"],
                 "--preset": ["nope"], "--layer": ["nope"]},
    "dream": {"--steps": COUNT, "--lr": FLOAT + ["0"], "--size": SIZE, "--layer": ["nope"]},
    "mine": {"--k": COUNT + ["100000000"], "--limit": ["0", "-1", "abc"], "--resize": SIZE, "--crop": SIZE, "--batch-size": COUNT + ["100000"],
             "--workers": ["-1", "abc", "100000"], "--checkpoint-every": ["0", "-1"], "--ray-tasks": ["0", "-1"],
             "--shard": ["2/2", "-1/2", "0/0", "a/b"], "--with": ["nope"], "--layers": ["nope"],
             "--layout": ["2=C", "2=NC:2x2"]},
    "merge": {"--device": ["tpu"]},
    "texture": {"--size": SIZE, "--steps": ["0", "-1", "abc"], "--lr": FLOAT + ["0"], "--tv-weight": FLOAT,
                "--style-scale": FLOAT + ["0", "1e30"], "--max-pixels": ["0", "-1", "abc"],
                "--snapshot-every": ["-1"], "--style-blend": ["nan", "-1", "0", "abc", "1,1"]},
    "transfer": {"--size": SIZE, "--steps": ["0", "-1", "abc", "1,2"], "--content-weight": FLOAT,
                 "--style-weight": FLOAT, "--tv-weight": FLOAT, "--lr": FLOAT + ["0"], "--style-scale": FLOAT,
                 "--max-pixels": ["0", "-1"], "--style-blend": ["nan", "-1"]},
    "train-stylizer": {"--size": SIZE, "--style-size": SIZE, "--steps": ["0", "-5", "abc"],
                       "--batch-size": COUNT + ["1000000"],
                       "--lr": FLOAT + ["0"], "--content-weight": FLOAT, "--style-weight": FLOAT, "--tv-weight": FLOAT,
                       "--width": ["0", "-1", "100000"], "--res-blocks": ["-1", "100000"],
                       "--noise-channels": ["0", "100000"], "--checkpoint-every": ["0", "-1"]},
    "stylize": {"--strength": FLOAT + ["2"], "--batch-size": ["0", "-5", "abc"], "--max-pixels": ["0", "-1"],
                "--size": ["0", "-1"], "--count": ["0", "-1"], "--seed": ["-1"]},
    "dashboard": {"--port": ["0", "-1", "abc", "70000"], "--max-upload-mb": ["0", "-1", "abc", "100000"]},
    "export": {"--max-mb": ["0", "-1", "nan", "abc"], "--layers": ["nope"]},
    "cam": {"--target": ["class:0", "unit:2:99", "unit:2:-1", "unit:0:0", "nope"], "--method": ["nope"],
            "--smooth": ["nope"], "--at": ["99,99", "-1,0", "a,b", "1"], "--batch": ["0", "-1", "abc"],
            "--layer": ["nope", "3"], "--input-size": SIZE},
    "demo": {"--limit": ["0", "-1"], "--view-units": ["-1"], "--maximize-size": ["0", "100000"],
             "--maximize-steps": ["0"], "--maximize": ["2:-1", "2:x", ":3", "nope", "1"]},
}

#: command → (where: an option or an argument position, {name: path}) for input paths.
INPUTS: dict[str, list[tuple[str | int, dict[str, str]]]] = {
    "dream": [(1, {"missing": "missing", "folder": "folder", "empty": "empty"})],
    "mine": [("--dataset", {"missing": "missing", "file": "afile", "empty": "empty"})],
    "merge": [(1, {"missing": "missing", "file": "afile", "not a shard": "run"})],
    "texture": [(1, {"missing": "missing", "folder": "folder", "empty": "empty"})],
    "transfer": [(1, {"missing": "missing", "folder": "folder"}), (2, {"missing": "missing", "empty": "empty"})],
    "train-stylizer": [(1, {"missing": "missing", "empty": "empty"}), ("--dataset", {"missing": "missing",
                                                                                      "file": "afile"})],
    "stylize": [(1, {"missing": "missing", "folder": "folder", "not a stylizer": "style"}),
                (2, {"missing": "missing", "empty": "empty"})],
    "dashboard": [("--run", {"missing": "missing", "file": "afile", "not a run": "folder"}),
                  ("--stylizers", {"missing": "missing", "file": "afile"})],
    "demo": [("--dataset", {"missing": "missing", "file": "afile"})],
    "cam": [(1, {"missing": "missing", "folder": "folder", "empty": "empty"}), ("--run", {"missing": "missing",
                                                                                       "not a run": "folder"})],
    "export": [(1, {"missing": "missing", "file": "afile", "not a run": "folder"})],
    "layers": [("--model", {"missing file": "missing"}), ("--weights", {"missing": "missing", "folder": "folder"})],
}
#: command → the option naming its output (a file or a folder).
OUTPUT = {"maximize": "--out", "dream": "--out", "mine": "--out", "merge": "--out", "texture": "--out",
          "transfer": "--out", "train-stylizer": "--out", "stylize": "--out", "dashboard": "--cache-dir",
          "demo": "--out", "export": "--out", "cam": "--out"}


def with_value(args: list[str], where: str | int, value: str) -> list[str]:
    args = list(args)
    if isinstance(where, int):
        args[where] = value
    elif where in args:
        args[args.index(where) + 1] = value
    else:
        args += [where, value]
    if where == "--model" and value.endswith("missing"):
        args[args.index("--model") + 1] = value + ".py:make"
    return args


def cases() -> list[tuple[str, str, str | int, str]]:
    found = [(command, f"{option}={value}", option, value)
             for command, options in OPTIONS.items() for option, values in options.items() for value in values]
    found += [(command, f"{where}:{name}", where, key)
              for command, table in INPUTS.items() for where, names in table for name, key in names.items()]
    found += [(command, f"{OUTPUT[command]}:under a file", OUTPUT[command], "under-file") for command in OUTPUT]
    return found


class TooManyWorkers(BaseException):
    """Raised when a case builds a DataLoader with more than 2 worker processes (not caught by `vis`)."""


@pytest.fixture(autouse=True)
def few_workers(monkeypatch):
    """No case of this module may start more than 2 data-loading processes: a `--workers` bound that
    let a huge value through once started 1,600 of them and exhausted 24 GiB."""
    from torch.utils.data import DataLoader

    original = DataLoader.__init__

    def guarded(self, *args, **kwargs):
        original(self, *args, **kwargs)
        if self.num_workers > 2:
            raise TooManyWorkers(f"a DataLoader with {self.num_workers} workers")
    monkeypatch.setattr(DataLoader, "__init__", guarded)


class TooLong(BaseException):
    """Raised by an alarm when a bad value was accepted and real work started (not caught by `vis`)."""


def fails_in_one_line(args: list[str], capsys) -> tuple[int, str]:
    import dash

    def too_long(*_):
        raise TooLong(f"accepted a bad value and kept working: {args}")
    with pytest.MonkeyPatch.context() as patch:
        never = lambda *a, **k: pytest.fail(f"served: {args}")  # noqa: E731
        patch.setattr(dash.Dash, "run", never)
        patch.setattr(vistoolbox.dashboard, "serve", never)
        previous = signal.signal(signal.SIGALRM, too_long)
        signal.alarm(60)
        try:
            with pytest.raises(SystemExit) as code:
                main(args)
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code.value.code in (1, 2), f"exit {code.value.code} for {args}: {captured.err}"
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    assert lines[0].startswith("vis") and "unexpected" not in lines[0], lines[0]
    return code.value.code, lines[0]


@pytest.mark.parametrize("command", list(OPTIONS))
def test_the_base_command_lines_are_valid(fx, tmp_path, command, monkeypatch):
    """The table's failures come from the bad value alone: each base command line succeeds."""
    monkeypatch.setattr(vistoolbox.dashboard, "serve", lambda *args, **kwargs: None)
    run_ok(base(command, fx, tmp_path))


@pytest.mark.parametrize("command, label, where, value", cases(), ids=[f"{c[0]} {c[1]}" for c in cases()])
def test_bad_input_is_one_line_exit_1_or_2(fx, tmp_path, capsys, command, label, where, value):
    if value == "under-file":
        value = str(Path(fx["afile"]) / "out.png")
    elif value in fx and where != "--weights" or value in ("missing", "folder"):
        value = fx[value]
    code, line = fails_in_one_line(with_value(base(command, fx, tmp_path), where, value), capsys)
    if label.endswith("under a file"):
        assert code == 2 and "a part of the path is a file" in line


@pytest.mark.parametrize("errno_, status", [(errno.ENOSPC, 1), (errno.EROFS, 1), (errno.EACCES, 1)])
@pytest.mark.parametrize("command", [c for c in OUTPUT if c != "dashboard"])
def test_full_read_only_or_forbidden_output(fx, tmp_path, capsys, monkeypatch, command, errno_, status):
    """Every output goes through an atomic rename; a disk that refuses it is one line, exit 1."""
    def refuse(src, dst, *args, **kwargs):
        raise OSError(errno_, os.strerror(errno_), src)
    monkeypatch.setattr(os, "replace", refuse)
    code, line = fails_in_one_line(base(command, fx, tmp_path), capsys)
    assert code == status and ".tmp" not in line


@pytest.mark.parametrize("value", [max_workers() + 1, 100000])
def test_workers_above_the_bound_are_refused_before_any_loader(fx, tmp_path, capsys, value):
    """`--workers` above max(4, 4 × CPUs) is a usage error naming the option; no DataLoader starts."""
    code, line = fails_in_one_line(with_value(base("mine", fx, tmp_path), "--workers", str(value)), capsys)
    assert code == 2 and f"--workers must be at most {max_workers()}" in line, line
