"""What :func:`~vistoolbox.attribution.api.cam` returns and how it is written: ``PATH.png`` (the map
over the image with its colour bar; a grid for several images), ``PATH.npz`` (``map`` ``[N, h, w]``
at the layer's resolution after the method's ReLU, unnormalised; ``upsampled`` ``[N, H, W]`` at the
input size; ``guided`` ``[N, 3, H, W]`` with guided Grad-CAM) and ``PATH.json`` (the record)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..files import write_json, write_npz
from ..images import montage, normalize_visual, save_png
from ..result import ImageResult, png_path

__all__ = ["CamResult", "guided_path"]


@dataclass
class CamResult(ImageResult):
    """``images``: the overlays ``[N, 3, H, W + legend]``; ``maps`` ``[N, h, w]``; ``upsampled``
    ``[N, H, W]``; ``guided`` (guided Grad-CAM, ``[N, 3, H, W]``) or None; ``contributions`` ``[N, K, h,
    w]`` (the per-unit terms of the map before its ReLU; None under ``aug`` smoothing), kept in memory
    only; ``record`` as the JSON sidecar holds it."""

    maps: torch.Tensor = field(default_factory=lambda: torch.empty(0))
    upsampled: torch.Tensor = field(default_factory=lambda: torch.empty(0))
    guided: torch.Tensor | None = None
    contributions: torch.Tensor | None = None

    @property
    def overlay(self) -> torch.Tensor:
        """The overlays (same as ``images``)."""
        return self.images

    def save(self, path: str | Path) -> list[Path]:
        """Write ``PATH.json``, ``PATH.npz`` and ``PATH.png`` (and ``PATH_guided.png`` with guided
        Grad-CAM); returns the PNGs written."""
        path = png_path(path)
        arrays = {"map": self.maps.float().cpu().numpy(), "upsampled": self.upsampled.float().cpu().numpy()}
        if self.guided is not None:
            arrays["guided"] = self.guided.float().cpu().numpy()
        self.record["files"] = {"png": str(path), "npz": str(path.with_suffix(".npz"))}
        written = []
        if self.guided is not None:
            self.record["files"]["guided"] = str(guided_path(path))
        write_json(path.with_suffix(".json"), self.record)
        write_npz(path.with_suffix(".npz"), arrays)
        if self.guided is not None:
            pictures = [normalize_visual(view) for view in self.guided]
            written.append(save_png(pictures[0] if len(pictures) == 1 else montage(pictures), guided_path(path)))
        picture = self.images[0] if len(self.images) == 1 else montage(list(self.images))
        return [save_png(picture, path), *written]


def guided_path(path: str | Path) -> Path:
    """Where the guided Grad-CAM picture of ``PATH.png`` goes: ``PATH_guided.png``."""
    path = Path(path)
    return path.with_name(f"{path.stem}_guided.png")
