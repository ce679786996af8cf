"""The run directory: one stable on-disk format written by mining/maximization, read by the dashboard.

::

    RUN/manifest.json              model, weights id + sha256, dataset root + fingerprint, preprocessing,
                                   layers (canonical → aliases), k, versions, counts, status
    RUN/images.json                image paths (relative to the dataset root) in index order
    RUN/layers/<name>/topk.npz     values [U,k] float32 descending, image_index, y, x [U,k] int64
    RUN/layers/<name>/stats.npz    mean_max [U], frac_active [U], hist_edges, hist_counts [U,bins]
    RUN/layers/<name>/patches/unit_0012.png          3×3 montage of the top-9
    RUN/layers/<name>/patches/unit_0012_3.png        rank-3 patch (``_deconv``, ``_backprop``, ``_guided`` views)
    RUN/layers/<name>/maximize/unit_0012.png + .json the unit's optimised image and its record

``<name>`` is the canonical layer name printed by ``vis layers``. Every file is written atomically.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from .errors import VisUsageError
from .files import read_json


def unit_stem(unit: int) -> str:
    """``unit_0012`` — the file stem of a unit."""
    return f"unit_{unit:04d}"


def layer_dir(run: str | Path, layer: str) -> Path:
    return Path(run) / "layers" / layer


def patch_path(run: str | Path, layer: str, unit: int, rank: int | None = None, view: str = "") -> Path:
    """Montage (``rank=None``) or one patch; `view` is ``""``, ``deconv``, ``backprop`` or ``guided``."""
    name = unit_stem(unit) + ("" if rank is None else f"_{rank}") + (f"_{view}" if view else "")
    return layer_dir(run, layer) / "patches" / f"{name}.png"


def maximize_path(run: str | Path, layer: str, unit: int) -> Path:
    """Optimised image of a unit (its JSON record sits beside it with suffix .json)."""
    return layer_dir(run, layer) / "maximize" / f"{unit_stem(unit)}.png"


@dataclass
class Run:
    """Read access to a run directory (see module doc). Use :func:`open_run`."""

    root: Path

    @cached_property
    def manifest(self) -> dict[str, Any]:
        return read_json(self.root / "manifest.json")

    @cached_property
    def images(self) -> list[str]:
        path = self.root / "images.json"
        return read_json(path) if path.exists() else []

    @property
    def layers(self) -> list[str]:
        """Canonical names of the mined layers, in manifest order."""
        return list(self.manifest.get("layers", {}))

    def aliases(self, layer: str) -> list[str]:
        return list(self.manifest.get("layers", {}).get(layer, {}).get("aliases", []))

    def layer_info(self, layer: str) -> dict[str, Any]:
        """Manifest entry of a layer (aliases, shape, rf_size, rf_stride, rf_offset, units)."""
        return dict(self.manifest.get("layers", {}).get(layer, {}))

    def resolve(self, layer: str) -> str:
        if layer in self.layers:
            return layer
        for name in self.layers:
            if layer in self.aliases(name):
                return name
        raise VisUsageError(f"layer {layer!r} is not in run {str(self.root)!r}; mined: {', '.join(self.layers)}")

    def topk(self, layer: str) -> dict[str, np.ndarray]:
        """``values, image_index, y, x`` arrays ``[U, k]`` of a layer."""
        with np.load(layer_dir(self.root, self.resolve(layer)) / "topk.npz") as data:
            return {key: data[key] for key in data.files}

    def stats(self, layer: str) -> dict[str, np.ndarray]:
        """``mean_max, frac_active [U], hist_edges, hist_counts [U, bins]`` of a layer."""
        with np.load(layer_dir(self.root, self.resolve(layer)) / "stats.npz") as data:
            return {key: data[key] for key in data.files}

    def units(self, layer: str) -> int:
        return int(self.layer_info(self.resolve(layer)).get("units") or self.topk(layer)["values"].shape[0])

    def image_path(self, index: int) -> Path:
        """Absolute path of dataset image `index`."""
        return Path(self.manifest["dataset"]["root"]) / self.images[index]

    def patch(self, layer: str, unit: int, rank: int | None = None, view: str = "") -> Path:
        return patch_path(self.root, self.resolve(layer), unit, rank, view)

    def maximized(self, layer: str, unit: int) -> Path:
        return maximize_path(self.root, self.resolve(layer), unit)

    @property
    def complete(self) -> bool:
        return self.manifest.get("status") == "complete"


def open_run(path: str | Path) -> Run:
    """Open a run directory written by ``vis mine``; a missing or foreign folder is a usage error."""
    root = Path(path)
    if not (root / "manifest.json").is_file():
        raise VisUsageError(f"{str(root)!r} is not a vistoolbox run (no manifest.json); make one with `vis mine`")
    return Run(root.resolve())
