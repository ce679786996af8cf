"""The offline demo image set: real photos, deterministic crops, reused on rerun."""
from __future__ import annotations

import hashlib

from PIL import Image

from vistoolbox.demo import DEMO_SCALES, build_demo_dataset, crop_windows


def test_crop_windows_cover_the_image_deterministically():
    windows = list(crop_windows(300, 451))
    assert len(windows) == sum(n * n for _, n in DEMO_SCALES)
    for _, (left, top, right, bottom) in windows:
        assert 0 <= left < right <= 451 and 0 <= top < bottom <= 300 and right - left == bottom - top
    assert windows == list(crop_windows(300, 451))


def test_build_demo_dataset(tmp_path):
    files = build_demo_dataset(tmp_path / "d", size=64, scales=((1.0, 1), (0.5, 2)))
    assert len(files) >= 5 * 15  # ≥ 15 bundled photos, 5 crops each
    names = {f.parent.name for f in files}
    assert {"astronaut", "chelsea", "coffee"} <= names
    with Image.open(files[0]) as im:
        assert im.size == (64, 64) and im.mode == "RGB"
    digest = hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()
    mtimes = [f.stat().st_mtime_ns for f in files]
    again = build_demo_dataset(tmp_path / "d", size=64, scales=((1.0, 1), (0.5, 2)))
    assert again == files and [f.stat().st_mtime_ns for f in again] == mtimes  # reused, not rewritten
    other = build_demo_dataset(tmp_path / "e", size=64, scales=((1.0, 1), (0.5, 2)))
    assert hashlib.sha256(b"".join(f.read_bytes() for f in other)).hexdigest() == digest


def test_vis_demo_no_serve_reduced_and_resumes(tmp_path):
    """`vis demo --no-serve` end to end on a reduced setting: demo images, mined run, views for the
    first units, optimised images; a second run reuses everything."""
    import json
    import subprocess
    import sys

    from vistoolbox import open_run

    out = tmp_path / "demo"
    args = [sys.executable, "-m", "vistoolbox.cli", "demo", "--no-serve", "--model", "alexnet",
            "--weights", "random", "--out", str(out), "--layers", "conv2,conv5", "--limit", "10",
            "--view-units", "2", "--maximize", "conv5:2", "--maximize-steps", "32"]
    first = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    # progress bars say the layers as the messages do (aliases), one at a time (no cursor-up codes)
    bars = {line.split(":")[0] for line in first.stderr.replace("\r", "\n").splitlines() if "%|" in line}
    assert bars == {"mine", "patches conv2", "patches conv5", "views conv2", "views conv5", "optimise conv5"}, bars
    assert "features." not in first.stderr and "\x1b[A" not in first.stderr
    assert "step 32/32" in first.stderr
    assert f"vis export {out / 'run'} --out {out / 'site'}" in first.stderr   # how to share it, printed at the end
    run = open_run(out / "run")
    assert run.complete and run.layers == ["features.3", "features.10"]
    assert len(run.images) == 10 and (out / "images" / "demo.json").exists()
    for layer in run.layers:
        for rank in range(9):
            assert run.patch(layer, 0, rank).exists() and run.patch(layer, 1, rank, "deconv").exists()
        assert not run.patch(layer, 2, 0, "deconv").exists()  # only the first --view-units units
    for unit in (0, 1):
        record = json.loads(run.maximized("conv5", unit).with_suffix(".json").read_text())
        assert record["activation_final"] > record["activation_initial"]
    stamp = (run.root / "layers" / "features.10" / "topk.npz").stat().st_mtime_ns
    second = subprocess.run(args + ["--quiet"], capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr
    assert (run.root / "layers" / "features.10" / "topk.npz").stat().st_mtime_ns == stamp



def test_maximize_targets_and_their_errors():
    import pytest

    from vistoolbox.demo import maximize_targets
    from vistoolbox.errors import VisUsageError

    assert maximize_targets(["conv1", " conv3:4", "fc6:0"]) == [("conv1", None), ("conv3", 4), ("fc6", 0)]
    for bad in (["conv3:x"], [":4"], ["conv3:-1"], ["conv3:1.5"]):
        with pytest.raises(VisUsageError, match="maximize"):
            maximize_targets(bad)


def test_demo_size_is_twice_the_field_within_bounds():
    """VGG16's block ends (fields 5, 14, 40, 92, 196 px, as `vis layers` traces them) get 32, 32, 80,
    184 and 224 px (the input); fc layers and unknown fields get the input size."""
    from vistoolbox.demo import demo_size
    from vistoolbox.features.receptive import GLOBAL, UNKNOWN, Field

    sizes = [demo_size(Field((rf, rf)), 224) for rf in (5, 14, 40, 92, 196)]
    assert sizes == [32, 32, 80, 184, 224]
    assert demo_size(Field((30, 9)), 224) == 64         # the longer side counts
    assert demo_size(GLOBAL, 224) == demo_size(UNKNOWN, 224) == 224


def test_demo_renders_every_unit_of_a_layer_small(tmp_path):
    """`maximize=("2",)` renders every unit of the layer at the field-derived size with the demo's
    rate and Lucid's transforms shrunk to that size; each unit's activation rises; a layer that was
    not mined is refused before any work."""
    import json

    import pytest

    from tests.tiny_run import tiny_mine_args
    from vistoolbox.demo import DEMO_LR, DemoPlan, run_demo
    from vistoolbox.errors import VisUsageError
    from vistoolbox.models import load_model
    from vistoolbox.rundir import open_run

    tiny_mine_args(tmp_path, images=4, k=2)
    model = load_model(f"{tmp_path / 'tiny.py'}:make", "random", input_size=64, quiet=True)
    with pytest.raises(VisUsageError, match="not among the mined"):
        run_demo(model, tmp_path / "no", tmp_path / "data", plan=DemoPlan(layers=("2",), maximize=("0",)), quiet=True)
    assert not (tmp_path / "no").exists()
    plan = DemoPlan(layers=("2",), views=(), maximize=("2",), maximize_steps=12)
    run = open_run(run_demo(model, tmp_path / "demo", tmp_path / "data", plan=plan, quiet=True))
    # the tiny net's field: 5 px, then 3 taps at stride 2 → 9 px → twice is 18 → 24 → at least 32 px
    for unit in range(4):
        record = json.loads(run.maximized("2", unit).with_suffix(".json").read_text())
        settings = json.loads(record["settings"]) if isinstance(record["settings"], str) else record["settings"]
        assert record["size"] == [32, 32] and settings["lr"] == DEMO_LR and settings["steps"] == 12
        assert (settings["pad"], settings["jitter"], settings["jitter2"]) == (6, 8, 4)   # 12, 16, 8 × 32/64
        assert record["activation_final"] > record["activation_initial"]
        assert record["plausibility"] is None          # the demo skips the judge (costlier than the image)
