"""The result of an optimisation: images plus a JSON-able record, and how both are written."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..files import write_json
from ..images import montage, save_png
from ..result import ImageResult, png_path
from ..rundir import unit_stem

__all__ = ["MaximizeResult", "PER_UNIT", "transparency_path"]

#: Record fields that hold one value per unit of the batch (a unit's own record keeps its value).
PER_UNIT = ("activation_initial", "activation_final", "plausibility", "plausibility_centred")


@dataclass
class MaximizeResult(ImageResult):
    """``images`` ``[N, 3, H, W]`` in 0–1 (already 8-bit quantised), one per entry of ``units``;
    ``record`` holds every setting, the seed, device, versions, ``activation_initial`` /
    ``activation_final`` (one per unit) and ``history`` (per step, one value per unit)."""

    units: list[int] = field(default_factory=list)
    transparency: torch.Tensor | None = None  # [N, 1, H, W] in 0–1 (MACO's map), saved beside each PNG
    stems: list[str] | None = None  # file stems of a batch's images (default: unit_0012 per unit)

    def grid(self) -> torch.Tensor:
        """All images tiled into one ``[3, H, W]`` montage."""
        return montage(list(self.images))

    def unit_record(self, i: int) -> dict[str, Any]:
        """The record of batch element `i` alone: scalar activations and its own history."""
        rec = dict(self.record)
        rec.update(unit=self.units[i], units=[self.units[i]], batch_units=self.units,
                   history=[row[i] for row in self.record["history"]])
        rec.update({key: self.record[key][i] for key in PER_UNIT if isinstance(self.record.get(key), list)})
        return rec

    def save(self, path: str | Path) -> list[Path]:
        """Write ``path`` (.png) and its ``.json`` sidecar. For several units the PNG is the grid
        and every unit also gets ``<stem>/unit_0012.png`` + ``.json``. Returns the PNGs written."""
        path = png_path(path)
        written: list[Path] = []
        if len(self.units) == 1:
            self._save_transparency(self.transparency, path)
            save_png(self.images[0], path)
            write_json(path.with_suffix(".json"), self.unit_record(0))
            return [path]
        folder = path.with_suffix("")
        stems = self.stems or [unit_stem(unit) for unit in self.units]
        for i, stem in enumerate(stems):
            written.append(self.save_unit(i, folder / f"{stem}.png"))
        if self.transparency is not None:
            self._save_transparency(montage(list(self.transparency.expand(-1, 3, -1, -1)))[None], path)
        save_png(self.grid(), path)
        write_json(path.with_suffix(".json"), {**self.record, "grid": True,
                                               "unit_files": [str(p) for p in written]})
        return [path, *written]

    def save_unit(self, i: int, path: str | Path) -> Path:
        """Write batch element `i` as a PNG and its sidecar (JSON first, so a PNG implies a record)."""
        path = Path(path)
        write_json(path.with_suffix(".json"), self.unit_record(i))
        if self.transparency is not None:
            self._save_transparency(self.transparency[i:i + 1], path)
        return save_png(self.images[i], path)

    @staticmethod
    def _save_transparency(alpha: torch.Tensor | None, path: Path) -> None:
        if alpha is not None:
            save_png(alpha[0].expand(3, -1, -1), transparency_path(path))


def transparency_path(path: str | Path) -> Path:
    """Where the transparency map of the image at `path` goes: ``<stem>_transparency.png``."""
    path = Path(path)
    return path.with_name(f"{path.stem}_transparency.png")
