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
            "--view-units", "2", "--maximize-layer", "conv5", "--maximize-units", "2", "--maximize-steps", "32"]
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

