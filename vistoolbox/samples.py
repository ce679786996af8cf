"""The offline sample photos (scikit-image's, scikit-learn's, matplotlib's — they install with the
dependencies) and the deterministic multi-scale square crops cut from them: the demo's image set,
and the default image folder wherever a natural-image sample is needed (MACO's magnitude spectrum).
"""
from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from PIL import Image

from .files import read_json, write_bytes, write_json

__all__ = ["DEMO_SCALES", "DEMO_VERSION", "SKIMAGE_SOURCES", "build_demo_dataset", "crop_windows", "demo_sources",
           "save_jpeg"]

#: scikit-image's bundled photos and textures that need no network (see the offline-data notes).
SKIMAGE_SOURCES = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "retina",
                   "immunohistochemistry", "brick", "grass", "gravel", "camera", "coins", "moon",
                   "clock", "page", "text")
#: (window side as a fraction of the image's shorter side, grid positions per axis)
DEMO_SCALES = ((1.0, 1), (0.6, 2), (0.35, 3))
DEMO_VERSION = 1


def _rgb(array: np.ndarray) -> np.ndarray:
    if array.dtype != np.uint8:
        array = (np.clip(array, 0, 1) * 255).astype(np.uint8) if array.max() <= 1 else array.astype(np.uint8)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    return array[:, :, :3]


def demo_sources() -> Iterator[tuple[str, np.ndarray]]:
    """(name, RGB uint8 array) of every offline photo available: scikit-image's, scikit-learn's two
    sample photos and matplotlib's sample photo when those packages are installed."""
    from skimage import data

    for name in SKIMAGE_SOURCES:
        try:
            yield name, _rgb(getattr(data, name)())
        except Exception:  # noqa: BLE001 - an image that needs a download is simply left out
            continue
    try:
        left, right, _ = data.stereo_motorcycle()
        yield "motorcycle_left", _rgb(left)
        yield "motorcycle_right", _rgb(right)
    except Exception:  # noqa: BLE001
        pass
    try:
        from sklearn.datasets import load_sample_images

        samples = load_sample_images()
        for fname, image in zip(samples.filenames, samples.images):
            yield "sklearn_" + Path(fname).stem, _rgb(image)
    except Exception:  # noqa: BLE001 - optional
        pass
    try:
        from matplotlib import cbook

        with cbook.get_sample_data("grace_hopper.jpg") as fh:
            yield "grace_hopper", _rgb(np.asarray(Image.open(fh).convert("RGB")))
    except Exception:  # noqa: BLE001 - optional
        pass


def crop_windows(height: int, width: int, scales=DEMO_SCALES) -> Iterator[tuple[str, tuple[int, int, int, int]]]:
    """Deterministic square windows (label, (left, top, right, bottom)) over an image."""
    short = min(height, width)
    for fraction, per_axis in scales:
        side = max(16, round(short * fraction))
        rows = np.linspace(0, height - side, per_axis).round().astype(int) if per_axis > 1 else [(height - side) // 2]
        cols = np.linspace(0, width - side, per_axis).round().astype(int) if per_axis > 1 else [(width - side) // 2]
        for r, top in enumerate(rows):
            for c, left in enumerate(cols):
                yield f"s{round(fraction * 100):03d}_r{r}c{c}", (int(left), int(top), int(left) + side, int(top) + side)


def build_demo_dataset(out: str | Path, size: int = 224, scales=DEMO_SCALES,
                       progress: Callable[[int, int], None] | None = None) -> list[Path]:
    """Write the demo crops (JPEG, `size`×`size`) under `out`; reuse them when already complete.

    Returns the image paths in a stable order. The folder holds ``demo.json`` recording what was
    made, so a rerun with the same settings does nothing.
    """
    out = Path(out)
    settings = {"version": DEMO_VERSION, "size": size, "scales": [list(s) for s in scales]}
    marker = out / "demo.json"
    if marker.exists():
        record = read_json(marker)
        if record.get("settings") == settings and all((out / p).exists() for p in record["files"]):
            return [out / p for p in record["files"]]
    files: list[str] = []
    sources = list(demo_sources())
    for i, (name, array) in enumerate(sources):
        image = Image.fromarray(array)
        for label, box in crop_windows(array.shape[0], array.shape[1], scales):
            crop = image.crop(box).resize((size, size), Image.Resampling.LANCZOS)
            rel = f"{name}/{name}_{label}.jpg"
            save_jpeg(crop, out / rel)
            files.append(rel)
        if progress:
            progress(i + 1, len(sources))
    digest = hashlib.sha256("\n".join(files).encode()).hexdigest()[:16]
    write_json(marker, {"settings": settings, "files": files, "fingerprint": digest})
    return [out / p for p in files]


def save_jpeg(image: Image.Image, path: Path) -> None:
    """Write `image` as a quality-92 JPEG, atomically."""
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=92)
    write_bytes(path, buf.getvalue())
