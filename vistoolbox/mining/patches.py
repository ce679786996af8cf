"""Patches of a mined run: each top-k hit cropped to its unit's receptive-field box.

The box of unit (y, x) comes from :func:`~vistoolbox.features.receptive.unit_box` on the preprocessed image
(the resized, centre-cropped RGB the model saw); where it leaves the image it is padded with the
model's mean colour, so every patch of a layer has the layer's full receptive-field size. fc layers
show the whole image: it is stored once per run (``RUN/inputs``) and their hits refer to it. Pixels are
copied, not resampled: a patch equals the box of the image exactly.
"""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from tqdm import tqdm

from ..features.receptive import Box, crop_padded, field_of, unit_box
from ..features.views import batch_views, view_patch
from ..files import write_bytes
from ..images import png_bytes
from ..models import LoadedModel
from ..rundir import Run, check_network, input_path, layer_dir, open_run, patch_path, read_arrays, short_name
from .datasets import ImageList, Transform

__all__ = ["grid_u8", "mean_colour_u8", "render_patches", "render_unit_views"]


def mean_colour_u8(mean: Sequence[float]) -> np.ndarray:
    """The model's mean colour (0–1 RGB) as uint8, the padding of patches."""
    return np.round(np.clip(np.asarray(mean, dtype=np.float64), 0, 1) * 255).astype(np.uint8)


class _ImageCache:
    """Preprocessed uint8 images by index (`locate` gives an index's file), least recently used
    dropped beyond `size`."""

    def __init__(self, locate: Callable[[int], Path], transform: Transform, size: int = 256):
        self.locate, self.transform, self.size = locate, transform, size
        self.cache: OrderedDict[int, np.ndarray] = OrderedDict()

    def __call__(self, index: int) -> np.ndarray:
        if index in self.cache:
            self.cache.move_to_end(index)
            return self.cache[index]
        array = self.transform(self.locate(index)).numpy()
        self.cache[index] = array
        if len(self.cache) > self.size:
            self.cache.popitem(last=False)
        return array


def grid_u8(tiles: Sequence[np.ndarray], ncols: int, pad: int = 2) -> np.ndarray:
    """uint8 ``[3, h, w]`` tiles → one ``[3, H, W]`` grid with white `pad` px gutters (the uint8 twin of
    :func:`vistoolbox.images.montage`, which works in float)."""
    nrows = -(-len(tiles) // ncols)
    channels, height, width = tiles[0].shape
    out = np.full((channels, nrows * height + (nrows - 1) * pad, ncols * width + (ncols - 1) * pad), 255, np.uint8)
    for i, tile in enumerate(tiles):
        row, col = divmod(i, ncols)
        out[:, row * (height + pad): row * (height + pad) + height, col * (width + pad): col * (width + pad) + width] = tile
    return out


def _png(array: np.ndarray) -> bytes:
    """Fast PNG of a uint8 ``[3, H, W]`` patch (runs write thousands)."""
    return png_bytes(array, compress_level=1)


def render_patches(run: str | Path, layers: dict[str, dict], images: ImageList, transform: Transform,
                   mean: Sequence[float], model: LoadedModel | None = None, views: Sequence[str] = (),
                   quiet: bool = False) -> None:
    """Write every patch, view and 3×3 montage of a run whose ``topk.npz`` files exist.

    Layers whose units see the whole image (fc) get no files of their own: each image among their
    hits is written once to ``RUN/inputs`` (:func:`~vistoolbox.rundir.input_path`), so the run grows
    with its images, not with units × k (views, being per unit, are still written per hit)."""
    run = Path(run)
    fill = mean_colour_u8(mean)
    cache = _ImageCache(images.absolute, transform)
    stored: set[int] = set()
    for name, entry in layers.items():
        data = read_arrays(layer_dir(run, name) / "topk.npz", root=run)
        index, ys, xs = data["image_index"], data["y"], data["x"]
        field = field_of(entry)
        size = (transform.crop, transform.crop)
        desc = f"patches {short_name(name, entry.get('aliases', []))}"
        for unit in tqdm(range(index.shape[0]), desc=desc, unit="unit", disable=quiet, leave=False):
            ranks = [r for r in range(index.shape[1]) if index[unit, r] >= 0]
            boxes = [unit_box(field, int(ys[unit, r]), int(xs[unit, r]), size) for r in ranks]
            tiles: list[np.ndarray] = []
            for rank, box in zip(ranks, boxes):
                image_index = int(index[unit, rank])
                if field.is_global:
                    if image_index not in stored:
                        write_bytes(input_path(run, image_index), _png(cache(image_index)))
                        stored.add(image_index)
                    continue
                patch = crop_padded(cache(image_index), box, fill)
                write_bytes(patch_path(run, name, unit, rank), _png(patch))
                tiles.append(patch)
            if views and model is not None and ranks:
                _render_views(run, model, name, unit, ranks, boxes, [cache(int(index[unit, r])) for r in ranks],
                              ys[unit], xs[unit], views)
            if tiles:
                write_bytes(patch_path(run, name, unit), _png(grid_u8(tiles, int(np.ceil(np.sqrt(index.shape[1]))))))


def _render_views(run: Path, model: LoadedModel, layer: str, unit: int, ranks: list[int], boxes: list[Box],
                  pictures: list[np.ndarray], ys: np.ndarray, xs: np.ndarray, views: Sequence[str]) -> None:
    batch = torch.from_numpy(np.stack(pictures)).float().div(255).to(model.device)
    maps = batch_views(model, batch, layer, [unit] * len(ranks), [int(ys[r]) for r in ranks],
                       [int(xs[r]) for r in ranks], views)
    for mode, tensor in maps.items():
        for i, (rank, box) in enumerate(zip(ranks, boxes)):
            write_bytes(patch_path(run, layer, unit, rank, mode), png_bytes(view_patch(tensor[i], box), compress_level=1))


def render_unit_views(run: str | Path | Run, model: LoadedModel, layer: str, units: Sequence[int],
                      views: Sequence[str], quiet: bool = False) -> int:
    """Write the `views` (deconv/backprop/guided) of the top-k patches of some `units` of a mined
    `layer` — for runs mined without views, or only a few units of them. Units whose view files
    all exist are skipped. Returns the number of units rendered now. The images are read through
    the run's gate (:meth:`~vistoolbox.rundir.Run.image_path`): a :class:`Run` opened with the
    user's dataset folders, or a path (its recorded dataset root, for the user who names it)."""
    opened = run if isinstance(run, Run) else open_run(run, trust_dataset=True)
    check_network(opened, model.describe(), model.seed, "write this model's views into it")
    name = opened.resolve(layer)
    prep = opened.manifest["preprocessing"]
    transform = Transform(int(prep["resize"]), int(prep["crop"]))
    cache = _ImageCache(opened.image_path, transform)
    field = field_of(opened.layer_info(name))
    top = opened.topk(name)
    done = 0
    for unit in tqdm(list(units), desc=f"views {opened.short_name(name)}", unit="unit", disable=quiet, leave=False):
        ranks = [r for r in range(top["image_index"].shape[1]) if top["image_index"][unit, r] >= 0]
        if not ranks or all(patch_path(opened.root, name, unit, r, v).exists() for r in ranks for v in views):
            continue
        boxes = [unit_box(field, int(top["y"][unit, r]), int(top["x"][unit, r]), (transform.crop, transform.crop))
                 for r in ranks]
        _render_views(opened.root, model, name, unit, ranks, boxes,
                      [cache(int(top["image_index"][unit, r])) for r in ranks], top["y"][unit], top["x"][unit], views)
        done += 1
    return done
