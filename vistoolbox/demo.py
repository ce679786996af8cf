"""`vis demo`: from a fresh install to a browsable run, offline.

An offline demo image set is cut from photos that install with the dependencies (deterministic
crops at several scales so every unit has enough candidates); the top-9 of a few layers are mined
with deconv views for their first units, and optimised images are precomputed for the first units
of one mid layer. Everything resumes: a second run reuses the images, the run and the renders.
"""
from __future__ import annotations

import hashlib
import io
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
from PIL import Image

from .actmax import maximize_layer
from .files import read_json, write_bytes, write_json
from .images import open_image
from .limits import side, whole
from .mining import mine, render_unit_views
from .mining.datasets import discover_images
from .models import LoadedModel
from .rundir import open_run

__all__ = ["build_demo_dataset", "crop_windows", "DEMO_SCALES", "demo_sources", "DEMO_VERSION", "DemoPlan",
           "model_units", "run_demo", "SKIMAGE_SOURCES", "tile_dataset"]

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
            _save_jpeg(crop, out / rel)
            files.append(rel)
        if progress:
            progress(i + 1, len(sources))
    digest = hashlib.sha256("\n".join(files).encode()).hexdigest()[:16]
    write_json(marker, {"settings": settings, "files": files, "fingerprint": digest})
    return [out / p for p in files]


def _save_jpeg(image: Image.Image, path: Path) -> None:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=92)
    write_bytes(path, buf.getvalue())


def tile_dataset(source: str | Path, out: str | Path, size: int = 224, scales=DEMO_SCALES) -> Path:
    """Cut every image of a folder/ImageFolder/list dataset into the demo's multi-scale square crops
    (for a few large photos, e.g. desktop wallpapers); existing tiles are kept. Returns `out`."""
    images = discover_images(source)
    out = Path(out)
    for index in range(len(images)):
        rel = Path(images.paths[index])
        try:
            picture = open_image(images.absolute(index))
        except Exception:  # noqa: BLE001 - unreadable files are left out, as mining would skip them
            continue
        for label, box in crop_windows(picture.height, picture.width, scales):
            target = out / rel.parent / f"{rel.stem}_{label}.jpg"
            if not target.exists():
                _save_jpeg(picture.crop(box).resize((size, size), Image.Resampling.LANCZOS), target)
    return out


@dataclass(frozen=True)
class DemoPlan:
    """What `vis demo` makes (defaults: the block ends of VGG16, deconv views for 8 units per layer,
    4 optimised images of conv3 at 160 px; the dashboard computes the rest on demand)."""

    layers: Sequence[str] = ("conv1", "conv2", "conv3", "conv4", "conv5")
    views: Sequence[str] = ("deconv",)
    view_units: int = 8
    maximize_layer: str | None = "conv3"
    maximize_units: int = 4
    maximize_steps: int | None = 128
    maximize_size: int | None = 160
    limit: int | None = None
    batch_size: int = 32

    def __post_init__(self) -> None:
        """Check the numbers before any work (errors name the fields)."""
        whole(self.view_units, "view_units", 0)
        whole(self.maximize_units, "maximize_units", 0)
        if self.maximize_steps is not None:
            whole(self.maximize_steps, "maximize_steps")
        if self.maximize_size is not None:
            side(self.maximize_size, "maximize_size")


def run_demo(model: LoadedModel, out: str | Path = "vis-demo", dataset: str | Path | None = None,
             tile: bool = False, plan: DemoPlan = DemoPlan(), seed: int = 0, quiet: bool = False) -> Path:
    """Build (or reuse) the demo images, mine them, render views and optimised images; return the run.

    Layout: ``OUT/images`` (demo crops, or ``OUT/tiles`` with `tile`), ``OUT/run`` (the run directory).
    """
    out = Path(out)
    def say(message: str) -> None:
        if not quiet:
            print(f"vis demo: {message}", file=sys.stderr, flush=True)

    if dataset is None:
        say("preparing the offline demo images")
        data: Path = out / "images"
        build_demo_dataset(data, size=model.input_size)
    elif tile:
        say(f"tiling {dataset}")
        data = tile_dataset(dataset, out / "tiles", size=model.input_size)
    else:
        data = Path(dataset)
    say(f"mining the top-9 of {', '.join(plan.layers)}")
    run = mine(model, data, out / "run", layers=list(plan.layers), limit=plan.limit, batch_size=plan.batch_size,
               seed=seed, quiet=quiet)
    if plan.views and plan.view_units > 0:
        say(f"{'/'.join(plan.views)} views of the first {plan.view_units} units of each layer")
        for layer in plan.layers:
            units = range(min(plan.view_units, model_units(run, layer)))
            render_unit_views(run, model, layer, units, plan.views, quiet=quiet)
    if plan.maximize_layer and plan.maximize_units > 0:
        say(f"optimised images of the first {plan.maximize_units} units of {plan.maximize_layer}")
        steps = {key: value for key, value in (("steps", plan.maximize_steps), ("size", plan.maximize_size)) if value}
        maximize_layer(model, plan.maximize_layer, run, units=range(plan.maximize_units), seed=seed,
                       quiet=quiet, batch=plan.maximize_units, **steps)
    return Path(run)


def model_units(run: str | Path, layer: str) -> int:
    """Number of units of a mined layer."""
    return open_run(run).units(layer)
