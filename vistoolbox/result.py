"""What the image-making pipelines return: images plus a JSON-able record, saved as PNG + sidecar."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from .errors import VisUsageError
from .files import write_json
from .images import save_png, to_pil

__all__ = ["ImageResult"]


@dataclass
class ImageResult:
    """``images`` ``[N, 3, H, W]`` in 0–1 (CPU) and ``record``, every setting and measurement that
    made them (what the JSON sidecar holds)."""

    images: torch.Tensor
    record: dict[str, Any]

    @property
    def image(self) -> Image.Image:
        """The first image as PIL (the only one for most results)."""
        return to_pil(self.images[0])

    def save(self, path: str | Path) -> list[Path]:
        """Write the first image as ``path`` (.png) and the record as its ``.json`` sidecar; returns
        the PNGs written."""
        path = png_path(path)
        write_json(path.with_suffix(".json"), self.record)
        return [save_png(self.images[0], path)]


def png_path(path: str | Path) -> Path:
    """`path` with a ``.png`` suffix; an `out` that exists and is not a regular file (a folder,
    ``/dev/null``, a FIFO) is a usage error rather than a sibling ``.png`` beside it."""
    path = Path(path)
    if path.exists() and not path.is_file():
        raise VisUsageError(f"`out` {str(path)!r} is not a regular file (a folder, device or FIFO); "
                            "give a .png file path")
    return path if path.suffix.lower() == ".png" else path.with_suffix(".png")
