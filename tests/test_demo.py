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
