"""Crafted runs and hostile command lines (issue 24): a run that names files outside itself, a
symlink to ``/dev/zero``, a layer key that climbs out, another network's images, flags that do not
apply, an output that is a device, an unknown host: each is one line with its exit code, and no file
outside the run (or the dataset folder given) is opened — an audit hook records every ``open``."""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from tiny_run import tiny_mine_args
from vistoolbox.cli import main

_OPENED: list[str] | None = None


def _audit(event: str, args: tuple) -> None:
    if _OPENED is not None and event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        _OPENED.append(os.fsdecode(args[0]))


sys.addaudithook(_audit)


def vis(args: list[str], capsys) -> tuple[int, str, list[str]]:  # noqa: ANN001
    """Run `vis ARGS` in this process: (exit code, stderr's last line, every path opened)."""
    global _OPENED
    _OPENED = []
    try:
        with pytest.raises(SystemExit) as code:
            main(args)
    finally:
        opened, _OPENED = _OPENED, None
    err = capsys.readouterr().err.strip().splitlines()
    assert not any("Traceback" in line for line in err), err
    return code.value.code, err[-1] if err else "", opened


@pytest.fixture(scope="module")
def mined(tmp_path_factory):
    """A tiny model's run over 4 photos, and a secret file beside it."""
    root = tmp_path_factory.mktemp("hostile")
    base = tiny_mine_args(root, images=4, k=2)
    with pytest.raises(SystemExit) as code:
        main([*base, "--out", str(root / "run")])
    assert code.value.code == 0
    (root / "secret").mkdir()
    shutil.copy(root / "data" / "0.png", root / "secret" / "secret.png")
    return root, base


def crafted(mined, tmp_path: Path, change) -> Path:  # noqa: ANN001
    """A copy of the mined run, changed by ``change(run)``."""
    run = tmp_path / "run"
    shutil.copytree(mined[0] / "run", run)
    change(run)
    return run


def traversal(run: Path) -> None:
    (run / "images.json").write_text(json.dumps(["../secret/secret.png", "/etc/passwd", "2.png", "3.png"]))


def dev_zero(run: Path) -> None:
    (run / "images.json").unlink()
    (run / "images.json").symlink_to("/dev/zero")


def climbing_layer(run: Path) -> None:
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["layers"] = {"../../outside": manifest["layers"]["2"]}
    (run / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("change, says", [(traversal, "not a path inside the dataset folder"),
                                          (dev_zero, "lies outside"),
                                          (climbing_layer, "not a plain folder name")])
def test_a_crafted_run_is_damaged_and_nothing_outside_is_opened(mined, tmp_path, capsys, change, says):
    run = crafted(mined, tmp_path, change)
    code, line, opened = vis(["export", str(run), "--out", str(tmp_path / "site"),
                              "--dataset", str(mined[0] / "data")], capsys)
    assert code == 1 and "is damaged" in line and says in line, line
    assert not any("secret" in path or path in ("/etc/passwd", "/dev/zero") for path in opened), opened


def test_another_networks_images_are_refused_and_no_run_is_created(mined, tmp_path, capsys):
    root, _ = mined
    before = sorted(p.name for p in (root / "run" / "layers" / "2").iterdir())
    code, line, _ = vis(["maximize", "--model", "alexnet", "--weights", "random", "--all", "--layers", "features.0",
                         "--run", str(root / "run"), "--steps", "2", "--quiet"], capsys)
    assert code == 2 and "another network" in line and "--model" in line, line
    assert sorted(p.name for p in (root / "run" / "layers" / "2").iterdir()) == before
    code, line, _ = vis(["maximize", *tiny_model(root), "--all", "--layers", "2", "--run", str(tmp_path / "nope"),
                         "--steps", "2", "--quiet"], capsys)
    assert code == 2 and "not a vistoolbox run" in line and not (tmp_path / "nope").exists()


def tiny_model(root: Path) -> list[str]:
    return ["--model", f"{root / 'tiny.py'}:make", "--weights", "random", "--input-size", "32"]


@pytest.mark.parametrize("extra, says", [
    (["--all", "--unit", "1", "--layers", "2", "--run", "RUN"], "--unit does not apply here"),
    (["--layer", "2", "--unit", "1", "--batch", "3"], "--batch does not apply here: only with --all"),
    (["--layer", "2", "--unit", "1", "--rank", "1"], "--rank does not apply here: only with --from-topk"),
    (["--layer", "2", "--unit", "1", "--from-topk", "RUN", "--rank", "-1"], "cannot read --rank '-1'"),
    (["--layer", "2", "--unit", "1", "--out", "/dev/null"], "--out '/dev/null' is not a regular file"),
    (["--layer", "2", "--unit", "1", "--diversity", "1e308"], "--diversity must be at most"),
    (["--layer", "2", "--unit", "1", "--lr", "1e39"], "--lr must be at most"),
    (["--layer", "2", "--unit", "1", "--steps", "1000000"], "--steps must be at most 100,000"),
])
def test_maximize_flags_that_do_not_apply_or_overflow_are_usage_errors(mined, tmp_path, capsys, extra, says):
    root, _ = mined
    extra = [str(root / "run") if arg == "RUN" else arg for arg in extra]
    code, line, _ = vis(["maximize", *tiny_model(root), "--steps", "2", "--quiet", *extra], capsys)
    assert code == 2 and says in line, line
    assert not Path("/dev/null.png").exists()


def test_mine_k_above_the_images_and_an_empty_dataset_are_usage_errors(mined, tmp_path, capsys):
    root, base = mined
    args = list(base)
    args[args.index("--k") + 1] = "16384"
    code, line, _ = vis([*args, "--out", str(tmp_path / "k")], capsys)
    assert code == 2 and "use a --k of at most 9" in line and not (tmp_path / "k" / "topk.npz").exists()
    args[args.index("--dataset") + 1] = ""
    code, line, _ = vis([*args, "--out", str(tmp_path / "e")], capsys)
    assert code == 2 and "--dataset is empty" in line


def test_an_unresolvable_host_is_refused_before_the_model_loads(mined, capsys):
    code, line, opened = vis(["dashboard", "--run", str(mined[0] / "run"), "--host", "no.such.host.invalid"], capsys)
    assert code == 2 and "--host 'no.such.host.invalid' is not an address" in line, line
    assert not any(path.endswith("tiny.py") or "manifest.json" in path for path in opened)


def test_an_oversized_image_names_the_flag_only_where_one_raises_the_limit(tmp_path):
    from PIL import Image

    from vistoolbox.errors import VisUsageError
    from vistoolbox.images import DEFAULT_MAX_PIXELS, open_image

    Image.new("RGB", (100, 100)).save(tmp_path / "a.png")
    with pytest.raises(VisUsageError, match="raise max_pixels or use a smaller image"):
        open_image(tmp_path / "a.png", max_pixels=2500)
    side = int(DEFAULT_MAX_PIXELS ** 0.5) + 1
    Image.new("L", (side, side)).save(tmp_path / "huge.png")   # above the default, which no flag raises
    with pytest.raises(VisUsageError, match="; use a smaller image$"):
        open_image(tmp_path / "huge.png")
    assert open_image(tmp_path / "a.png").size == (100, 100)


def test_too_small_an_input_names_the_flag_given_and_the_smallest_size_that_works(mined, tmp_path, capsys):
    import torch
    import torchvision

    root, _ = mined
    args = ["mine", "--model", "alexnet", "--weights", "random", "--dataset", str(root / "data"), "--k", "2",
            "--quiet", "--out", str(tmp_path / "r")]
    code, line, _ = vis([*args, "--input-size", "16"], capsys)
    assert code == 2 and "use a larger --input-size, at least 63" in line, line
    code, line, _ = vis([*args, "--crop", "40"], capsys)
    assert code == 2 and "use a larger --crop, at least 63" in line, line
    features = torchvision.models.alexnet().features.eval()   # the size, checked by a plain forward
    with torch.no_grad():
        assert features(torch.zeros(1, 3, 63, 63)).shape[-1] == 1
        with pytest.raises(RuntimeError):
            features(torch.zeros(1, 3, 62, 62))


def test_a_decompression_bomb_is_one_line_without_pillows_warning(mined, tmp_path, capsys):
    from PIL import Image

    Image.new("L", (9500, 9500)).save(tmp_path / "bomb.png")   # 90 Mpx: above Pillow's warning threshold
    with pytest.raises(SystemExit) as code:
        main(["maximize", *tiny_model(mined[0]), "--layer", "2", "--unit", "0", "--from",
              str(tmp_path / "bomb.png"), "--steps", "2", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code.value.code == 2 and len(err) == 1 and "9500x9500 pixels" in err[0], err
    assert "DecompressionBomb" not in err[0]
