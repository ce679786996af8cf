"""`vis demo`: from a fresh install to a browsable run, offline.

An offline demo image set is cut from photos that install with the dependencies (deterministic
crops at several scales so every unit has enough candidates; :mod:`vistoolbox.samples`); the top-9 of a few layers are mined
with deconv views for their first units, and optimised images are precomputed for the first units
of one mid layer. Everything resumes: a second run reuses the images, the run and the renders.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from PIL import Image

from .actmax import maximize_layer
from .images import open_image
from .limits import side, whole
from .mining import mine, render_unit_views
from .mining.datasets import discover_images
from .models import LoadedModel
from .rundir import open_run
from .samples import (DEMO_SCALES, DEMO_VERSION, SKIMAGE_SOURCES, build_demo_dataset, crop_windows, demo_sources,
                      save_jpeg)

__all__ = ["build_demo_dataset", "crop_windows", "DEMO_SCALES", "demo_sources", "DEMO_VERSION", "DemoPlan",
           "model_units", "run_demo", "SKIMAGE_SOURCES", "tile_dataset"]

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
                save_jpeg(picture.crop(box).resize((size, size), Image.Resampling.LANCZOS), target)
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
