"""`vis demo`: from a fresh install to a browsable run, offline.

An offline demo image set is cut from photos that install with the dependencies (deterministic
crops at several scales so every unit has enough candidates; :mod:`vistoolbox.samples`); the top-9 of a few layers are mined
with deconv views for their first units, and optimised images are precomputed for every unit of
the early layers (small images sized from the receptive field, so the Units grid shows them) and the
first units of a mid layer. Everything resumes: a second run reuses the images, the run and the renders.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from PIL import Image

from .actmax import maximize_layer
from .errors import VisUsageError
from .features.receptive import Field, field_of
from .images import named, open_image
from .limits import learning_rate, side, steps, whole
from .mining import mine, render_unit_views
from .mining.datasets import discover_images
from .models import LoadedModel
from .rundir import open_run
from .samples import (DEMO_SCALES, DEMO_VERSION, SKIMAGE_SOURCES, build_demo_dataset, crop_windows, demo_sources,
                      save_jpeg)

__all__ = ["build_demo_dataset", "crop_windows", "DEMO_LR", "DEMO_MIN_SIZE", "DEMO_PRESET", "DEMO_SCALES", "demo_size", "demo_sources",
           "DEMO_VERSION", "DemoPlan", "maximize_targets", "model_units", "run_demo", "SKIMAGE_SOURCES", "tile_dataset"]

#: Units optimised together in one batch by the demo.
DEMO_BATCH = 64


def tile_dataset(source: str | Path, out: str | Path, size: int = 224, scales=DEMO_SCALES) -> Path:
    """Cut every image of a folder/ImageFolder/list dataset into the demo's multi-scale square crops
    (for a few large photos, e.g. desktop wallpapers); existing tiles are kept. Unreadable images are
    skipped, as mining skips them, and listed on stderr; none readable is a usage error. Returns `out`."""
    images = discover_images(source)
    out = Path(out)
    skipped: list[str] = []
    for index in range(len(images)):
        rel = Path(images.paths[index])
        try:
            picture = open_image(images.absolute(index))
        except Exception:  # noqa: BLE001 - unreadable files are left out, as mining would skip them
            skipped.append(images.paths[index])
            continue
        for label, box in crop_windows(picture.height, picture.width, scales):
            target = out / rel.parent / f"{rel.stem}_{label}.jpg"
            if not target.exists():
                save_jpeg(picture.crop(box).resize((size, size), Image.Resampling.LANCZOS), target)
    if len(skipped) == len(images):
        raise VisUsageError(f"`dataset` {str(source)!r}: none of its {named(skipped)} can be decoded; nothing to tile")
    if skipped:
        print(f"vis demo: skipped {named(skipped)} (unreadable, as `vis mine` skips them)", file=sys.stderr, flush=True)
    return out


#: The demo's optimised images are small (twice the unit's receptive field, 32 px at least), so a
#: higher rate than lucid's 0.05 and few steps suffice. Measured on VGG16 (hed) conv2, all 128 units:
#: 32 px / 64 steps / lr 0.1 left 4.7 % of the images flat (pixel std < 12), 48 px / 48 steps / lr 0.05
#: left 14.8 % flat in 2.1× the time.
DEMO_LR = 0.1
#: The preset the demo's images start from: `quick`, whose pad and jitters are meant at the model's
#: input size, so they scale with the demo's smaller images (see :func:`vistoolbox.actmax.presets.sized`).
DEMO_PRESET = "quick"
#: Smallest optimised image of the demo (px).
DEMO_MIN_SIZE = 32


@dataclass(frozen=True)
class DemoPlan:
    """What `vis demo` makes (defaults: the block ends of VGG16, deconv views for 8 units per layer,
    optimised images of every unit of conv1 and conv2 and of the first 4 of conv3; the dashboard
    computes the rest on demand).

    `maximize` names layers as ``LAYER`` (every unit) or ``LAYER:N`` (the first N units);
    `maximize_size` None sizes each layer's images from its receptive field (:func:`demo_size`)."""

    layers: Sequence[str] = ("conv1", "conv2", "conv3", "conv4", "conv5")
    views: Sequence[str] = ("deconv",)
    view_units: int = 8
    maximize: Sequence[str] = ("conv1", "conv2", "conv3:4")
    maximize_steps: int = 64
    maximize_size: int | None = None
    maximize_lr: float = DEMO_LR
    limit: int | None = None
    batch_size: int = 32

    def __post_init__(self) -> None:
        """Check the numbers before any work (errors name the fields)."""
        whole(self.view_units, "view_units", 0)
        steps(self.maximize_steps, "maximize_steps")
        learning_rate(self.maximize_lr, "maximize_lr")
        if self.maximize_size is not None:
            side(self.maximize_size, "maximize_size")
        maximize_targets(self.maximize)


def maximize_targets(entries: Sequence[str]) -> list[tuple[str, int | None]]:
    """``["conv1", "conv3:4"]`` → ``[("conv1", None), ("conv3", 4)]`` (None: every unit)."""
    targets: list[tuple[str, int | None]] = []
    for entry in entries:
        layer, _, count = str(entry).strip().partition(":")
        if not layer:
            raise VisUsageError(f"`maximize` entry {entry!r} names no layer; use LAYER or LAYER:N, e.g. conv3:4")
        try:
            units = None if not count else whole(int(count), "maximize", 0)
        except ValueError:
            raise VisUsageError(f"`maximize` entry {entry!r}: N must be a whole number, e.g. conv3:4") from None
        targets.append((layer, units))
    return targets


def demo_size(field: Field, input_size: int) -> int:
    """The demo's optimised-image size for a layer whose units see `field`: twice the field, rounded
    up to 8 px, at least :data:`DEMO_MIN_SIZE` and at most the model's `input_size` (which global and
    unknown fields get)."""
    if field.is_global or not field.exact:
        return input_size
    wanted = 8 * math.ceil(2 * max(field.size) / 8)
    return max(DEMO_MIN_SIZE, min(input_size, wanted))


def run_demo(model: LoadedModel, out: str | Path = "vis-demo", dataset: str | Path | None = None,
             tile: bool = False, plan: DemoPlan = DemoPlan(), seed: int = 0, quiet: bool = False) -> Path:
    """Build (or reuse) the demo images, mine them, render views and optimised images; return the run.

    Layout: ``OUT/images`` (demo crops, or ``OUT/tiles`` with `tile`), ``OUT/run`` (the run directory).
    """
    out = Path(out)
    def say(message: str) -> None:
        if not quiet:
            print(f"vis demo: {message}", file=sys.stderr, flush=True)

    targets = maximize_targets(plan.maximize)
    mined_layers = {model.resolve(layer) for layer in plan.layers}
    for layer, _ in targets:
        if model.resolve(layer) not in mined_layers:
            raise VisUsageError(f"`maximize` layer {layer!r} is not among the mined `layers` "
                                f"({', '.join(plan.layers)}); the demo sizes a layer's images from its mined receptive field")
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
    skipped = open_run(run).manifest.get("counts", {}).get("skipped_paths") or []
    if skipped:
        say(f"skipped {named(skipped)} (unreadable, as `vis mine` skips them)")
    if plan.views and plan.view_units > 0:
        say(f"{'/'.join(plan.views)} views of the first {plan.view_units} units of each layer")
        for layer in plan.layers:
            units = range(min(plan.view_units, model_units(run, layer)))
            render_unit_views(run, model, layer, units, plan.views, quiet=quiet)
    mined = open_run(run)
    for layer, count in targets:
        canonical = mined.resolve(layer)
        total = mined.units(canonical)
        units = range(total if count is None else min(count, total))
        if not units:
            continue
        size = plan.maximize_size or demo_size(field_of(mined.layer_info(canonical)), model.input_size)
        say(f"optimised images of {'every unit' if len(units) == total else f'the first {len(units)} units'} "
            f"of {layer} ({size} px, {plan.maximize_steps} steps)")
        # no plausibility judge here: it costs more than these small images (0.6 s per unit on 2 CPU
        # cores against 0.1-0.2 s of optimisation); `vis maximize` and the dashboard record it
        maximize_layer(model, layer, run, units=units, preset=DEMO_PRESET, seed=seed, quiet=quiet,
                       batch=min(DEMO_BATCH, len(units)), steps=plan.maximize_steps, size=size,
                       lr=plan.maximize_lr, plausibility=False)
    return Path(run)


def model_units(run: str | Path, layer: str) -> int:
    """Number of units of a mined layer."""
    return open_run(run).units(layer)
