"""What a mined run shows of its units — shared by the dashboard and the static export.

- :func:`thumbnail` / :func:`sprite_image`: one small picture per unit (the optimised image when the
  run has it, else the top-1 patch, else the montage) and a layer's grid of them in one image.
- :func:`source_hit`: where a top-k hit sits on its full dataset image — the centre crop the model
  saw and the unit's receptive-field box, mapped back through the miner's resize + crop into the
  original image's pixels (the caller draws them: with Pillow, or as CSS boxes over the file).
- :func:`image_part`: which part of a hit's patch is image and which is padding.
- :func:`histogram_bins`: the non-empty part of a unit's activation histogram.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
from PIL import Image

from ..errors import VisError
from ..features.layout import position_grid
from ..features.receptive import field_of, unit_box
from ..images import open_image
from ..rundir import Run

__all__ = ["count_maximized", "GRID_COLUMNS", "GRID_SHOWS", "Histogram", "Rect", "SourceHit", "THUMB", "crop_geometry", "crop_size", "histogram_bins",
           "image_part", "source_hit", "sprite_image", "thumbnail", "thumbnails"]

GRID_COLUMNS = 16   # units per row of a layer's grid
THUMB = 48          # px per unit in the grid sprite

#: (left, top, right, bottom) in pixels of the original image, right/bottom exclusive
Rect = tuple[float, float, float, float]


#: What a layer's grid shows of each unit: ``maximized`` (its optimised image where the run has one)
#: or ``patch`` (its top-1 patch); either falls back to the top-1 patch, then to the montage.
GRID_SHOWS = ("maximized", "patch")


def thumbnail(run: Run, layer: str, unit: int, shows: str = "maximized") -> Path | None:
    """The unit's picture for a grid (see :data:`GRID_SHOWS`; None: the run has nothing of it)."""
    first = [run.maximized(layer, unit)] if shows == "maximized" else []
    for path in (*first, run.patch(layer, unit, 0), run.patch(layer, unit)):
        if path.is_file():
            return path
    return None


def thumbnails(run: Run, layer: str, shows: str = "maximized") -> list[Path | None]:
    """:func:`thumbnail` of every unit of a layer, in unit order."""
    return [thumbnail(run, layer, unit, shows) for unit in range(run.units(layer))]


def count_maximized(run: Run, layer: str) -> int:
    """How many units of `layer` have an optimised image in the run."""
    return sum(run.maximized(layer, unit).is_file() for unit in range(run.units(layer)))


def sprite_image(paths: Sequence[Path | None], columns: int = GRID_COLUMNS, thumb: int = THUMB) -> Image.Image:
    """One RGB image holding the pictures `paths` (one per unit, None: left white) as `thumb`-px tiles,
    `columns` per row in unit order; pictures smaller than a tile are scaled up without smoothing,
    unreadable ones are left white."""
    rows = max(1, math.ceil(len(paths) / columns))
    canvas = Image.new("RGB", (columns * thumb, rows * thumb), (255, 255, 255))
    for unit, path in enumerate(paths):
        if path is None:
            continue
        try:
            tile = open_image(path)
        except VisError:   # a missing or damaged file leaves its tile white
            continue
        small = max(tile.size) < thumb
        tile = tile.resize((thumb, thumb), Image.Resampling.NEAREST if small else Image.Resampling.BILINEAR)
        row, col = divmod(unit, columns)
        canvas.paste(tile, (col * thumb, row * thumb))
    return canvas


def crop_size(run: Run) -> int:
    """The side of the square crop the model saw in a run."""
    pre = run.manifest.get("preprocessing", {})
    return int(pre.get("crop") or pre.get("input_size") or 224)


def crop_geometry(run: Run, size: tuple[int, int]) -> tuple[int, Callable[[float, float], tuple[float, float]]]:
    """The miner's crop size and a map from crop pixel (row, col) to original pixel (x, y) for an
    original image of `size` (w, h), following :func:`vistoolbox.images.resize_center_crop`."""
    pre = run.manifest.get("preprocessing", {})
    crop = crop_size(run)
    resize = int(pre.get("resize") or pre.get("resize_size") or crop)
    width, height = size
    scale = resize / min(size)
    new_w, new_h = max(crop, round(width * scale)), max(crop, round(height * scale))
    left, top = (new_w - crop) // 2, (new_h - crop) // 2
    return crop, lambda row, col: ((col + left) * width / new_w, (row + top) * height / new_h)


@dataclass(frozen=True)
class SourceHit:
    """A top-k hit on its original image of `size` (w, h): the `crop` the model saw, the unit's
    receptive `field` clipped to it (None for layers without a spatial field) and, where the field
    is wider than exact (a bound, the whole image), the unit's own `cell` of the position grid (a
    ViT token's patch)."""

    size: tuple[int, int]
    crop: Rect
    field: Rect | None
    cell: Rect | None = None


def source_hit(run: Run, layer: str, y: int, x: int, size: tuple[int, int]) -> SourceHit:
    """Where unit position (`y`, `x`) of `layer` lies on an original image of `size` (w, h)."""
    crop, to_original = crop_geometry(run, size)
    rect = lambda top, left, bottom, right: (*to_original(top, left), *to_original(bottom, right))  # noqa: E731
    info = run.layer_info(run.resolve(layer))
    field = cell = None
    if info.get("rf_size"):
        box = unit_box(field_of(info), int(y), int(x), (crop, crop))
        field = rect(box.top, box.left, box.bottom, box.right)
    grid = position_grid(info)
    if grid and y >= 0 and info.get("rf", "exact") != "exact":
        rows, cols = grid
        cell = rect(y * crop / rows, x * crop / cols, (y + 1) * crop / rows, (x + 1) * crop / cols)
    return SourceHit(size=(int(size[0]), int(size[1])), crop=rect(0, 0, crop, crop), field=field, cell=cell)


def image_part(run: Run, layer: str, y: int, x: int) -> Rect | None:
    """The part of the patch at unit position (`y`, `x`) that is image rather than the mean-colour
    padding, as fractions (left, top, right, bottom) of the patch; None when the whole patch is image
    (or the layer has no spatial field)."""
    info = run.layer_info(run.resolve(layer))
    if not info.get("rf_size") or y < 0 or x < 0:
        return None
    crop = crop_size(run)
    box = unit_box(field_of(info), int(y), int(x), (crop, crop))
    height, width = box.full_size
    if (height, width) == (box.bottom - box.top, box.right - box.left):
        return None
    return (box.pad_left / width, box.pad_top / height, (width - box.pad_right) / width,
            (height - box.pad_bottom) / height)


@dataclass(frozen=True)
class Histogram:
    """The non-empty bins of a unit's histogram (± `margin` empty ones): `edges` (len(counts) + 1)
    and `counts`, with the unit's mean spatial max and active fraction when the run has them."""

    edges: np.ndarray
    counts: np.ndarray
    mean_max: float | None
    frac_active: float | None

    @property
    def labels(self) -> list[str]:
        """``"0.5 … 0.707"`` per bin."""
        return [f"{a:.3g} … {b:.3g}" for a, b in zip(self.edges[:-1], self.edges[1:])]


def histogram_bins(run: Run, layer: str, unit: int, margin: int = 2,
                   stats: Mapping[str, np.ndarray] | None = None) -> Histogram:
    """The unit's activation histogram from ``stats.npz`` (or the layer's `stats` already read),
    trimmed to its non-empty bins."""
    stats = run.stats(layer) if stats is None else stats
    counts = np.asarray(stats["hist_counts"])[unit]
    edges = np.asarray(stats["hist_edges"])
    edges = edges[unit] if edges.ndim == 2 else edges
    nonzero = np.flatnonzero(counts)
    lo, hi = (int(nonzero[0]), int(nonzero[-1]) + 1) if len(nonzero) else (0, len(counts))
    lo, hi = max(0, lo - margin), min(len(counts), hi + margin)
    scalar = lambda key: float(stats[key][unit]) if key in stats else None  # noqa: E731
    return Histogram(edges=edges[lo:hi + 1], counts=counts[lo:hi], mean_max=scalar("mean_max"),
                     frac_active=scalar("frac_active"))
