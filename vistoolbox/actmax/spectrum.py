"""The natural-image magnitude spectrum that MACO's phase-only parameterization keeps fixed.

Computed offline from any folder of images (MACO's reference code downloads one averaged over
ImageNet; we average over the images you have): each image is centre-cropped to the target aspect,
resized to the target size, mapped into the colour latent of :class:`.params.PhaseImage`
(:func:`.fourier.to_latent`), and the ``|rfft2|`` (ortho) of every latent channel is averaged. The
DC bins hold the *signed* mean instead (the average colour, not its magnitude).

Spectra are cached in ``<cache dir>/spectra/`` under a fingerprint of the folder (every image's
relative path and byte size), the size and the method version; the fingerprint goes into the record.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image

from ..errors import VisUsageError
from ..files import write_atomic
from ..images import find_images, open_image
from ..rundir import open_run
from ..samples import build_demo_dataset
from ..weights import cache_dir
from .fourier import LATENT_EPS, color_matrix, to_latent

__all__ = ["SPECTRUM_VERSION", "Spectrum", "folder_fingerprint", "natural_spectrum", "sample_folder"]

SPECTRUM_VERSION = 1


@dataclass(frozen=True)
class Spectrum:
    """``magnitude`` ``[3, H, W // 2 + 1]`` (DC signed) and where it came from."""

    magnitude: torch.Tensor
    source: str
    images: int
    fingerprint: str

    def describe(self) -> dict[str, Any]:
        """What the record keeps: source folder, image count, fingerprint, size."""
        h = int(self.magnitude.shape[1])
        return {"source": self.source, "images": self.images, "fingerprint": self.fingerprint,
                "size": [h, (int(self.magnitude.shape[2]) - 1) * 2], "version": SPECTRUM_VERSION}


def folder_fingerprint(paths: list[Path], root: Path, size: tuple[int, int]) -> str:
    """sha256 over every image's relative path and byte size, the target size and the method."""
    digest = hashlib.sha256(f"spectrum v{SPECTRUM_VERSION} {size[0]}x{size[1]} eps {LATENT_EPS}\n".encode())
    for path in paths:
        digest.update(f"{path.relative_to(root).as_posix()}\t{path.stat().st_size}\n".encode())
    return digest.hexdigest()


def _fit(image: Image.Image, size: tuple[int, int]) -> torch.Tensor:
    """Centre crop to the aspect of `size` (h, w), resize (bicubic), 0–1 ``[1, 3, h, w]``."""
    h, w = size
    scale = min(image.width / w, image.height / h)
    cw, ch = round(w * scale), round(h * scale)
    left, top = (image.width - cw) // 2, (image.height - ch) // 2
    image = image.crop((left, top, left + cw, top + ch)).resize((w, h), Image.Resampling.BICUBIC)
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]


def _compute(paths: list[Path], size: tuple[int, int], progress: Callable[[int, int], None] | None) -> tuple[torch.Tensor, int]:
    color = color_matrix(True)
    total: torch.Tensor | None = None
    dc: torch.Tensor | None = None
    used = 0
    for i, path in enumerate(paths):
        try:
            image = open_image(path)
        except Exception:  # noqa: BLE001 - an unreadable file is left out, as mining skips it
            continue
        spectrum = torch.fft.rfft2(to_latent(_fit(image, size), color)[0].double(), norm="ortho")
        total = spectrum.abs() if total is None else total + spectrum.abs()
        dc = spectrum[:, 0, 0].real if dc is None else dc + spectrum[:, 0, 0].real
        used += 1
        if progress:
            progress(i + 1, len(paths))
    if total is None or dc is None:
        raise VisUsageError("no readable image in the `spectrum` folder")
    magnitude = total / used
    magnitude[:, 0, 0] = dc / used
    return magnitude.float(), used


def natural_spectrum(folder: str | Path, size: tuple[int, int], *, cache: bool = True,
                     progress: Callable[[int, int], None] | None = None) -> Spectrum:
    """The averaged magnitude spectrum of the images under `folder` (or under a mining run's
    dataset folder) at `size` (h, w), from the cache when the folder's fingerprint is known.

    Raises :class:`VisUsageError` (naming `spectrum`) for a missing folder or one without images.
    """
    root = Path(folder)
    if (root / "manifest.json").is_file():  # a mining run: its dataset (for the user who names the run)
        root = open_run(root, trust_dataset=True).dataset_root
    if not root.is_dir():
        raise VisUsageError(f"`spectrum` folder {str(folder)!r} does not exist")
    paths = find_images(root)
    if not paths:
        raise VisUsageError(f"`spectrum` folder {str(folder)!r} has no images")
    fingerprint = folder_fingerprint(paths, root, size)
    cached = cache_dir() / "spectra" / f"{fingerprint[:32]}.pt"
    if cache and cached.exists():
        stored = torch.load(cached, weights_only=True)
        if stored.get("fingerprint") == fingerprint:
            return Spectrum(stored["magnitude"], str(root.resolve()), int(stored["images"]), fingerprint)
    magnitude, used = _compute(paths, size, progress)
    if cache:
        state = {"magnitude": magnitude, "images": used, "fingerprint": fingerprint, "source": str(root.resolve())}
        write_atomic(cached, lambda tmp: torch.save(state, tmp))
    return Spectrum(magnitude, str(root.resolve()), used, fingerprint)


def sample_folder() -> Path:
    """The default spectrum source: the offline sample crops (:mod:`vistoolbox.samples`, the demo's
    image set), written once into ``<cache dir>/sample-crops``."""
    out = cache_dir() / "sample-crops"
    build_demo_dataset(out)
    return out
