"""Image datasets for mining: discover the files, decode and preprocess them in a DataLoader.

A dataset is a folder (searched recursively for image suffixes), an ImageFolder-style tree (each
top-level sub-folder is a class, recorded) or a text file with one image path per line. Images get
a fixed index: their position in the sorted list. Files that cannot be decoded are *skipped*: they
keep their index, are never a top-k hit, and are reported (never a crash, never a silent gap).
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..errors import VisUsageError
from ..images import IMAGE_SUFFIXES, find_images, open_image, resize_center_crop
from ..limits import whole, worker_count

__all__ = ["ImageList", "MiningDataset", "Transform", "discover_images", "make_loader"]


@dataclass(frozen=True)
class ImageList:
    """The images of a dataset: `root` plus relative POSIX paths in index order."""

    root: Path
    paths: list[str]
    kind: str  # "folder" | "imagefolder" | "list"
    classes: list[str] = field(default_factory=list)  # per image; ImageFolder trees only

    def __len__(self) -> int:
        return len(self.paths)

    def absolute(self, index: int) -> Path:
        return self.root / self.paths[index]

    def fingerprint(self) -> str:
        """sha256 over (relative path, file size) of every image: changes when the dataset does."""
        digest = hashlib.sha256()
        for rel in self.paths:
            try:
                size = os.stat(self.root / rel).st_size
            except OSError:
                size = -1
            digest.update(f"{rel}\t{size}\n".encode())
        return digest.hexdigest()

    def describe(self) -> dict:
        described = {"root": str(self.root), "kind": self.kind, "count": len(self.paths),
                     "fingerprint": self.fingerprint()}
        if self.classes:
            described["classes"] = sorted(set(self.classes))  # image i's class: its first path part
        return described


def discover_images(source: str | Path, limit: int | None = None) -> ImageList:
    """List the images of a folder, ImageFolder tree or text file (see module doc); `limit` keeps the first N."""
    if not str(source).strip():   # Path("") is the current folder: never mine it by accident
        raise VisUsageError("`dataset` is empty; give a folder of images, an ImageFolder tree or a text file with "
                            "one image path per line")
    src = Path(source)
    if limit is not None:
        limit = whole(limit, "limit")
    if src.is_dir():
        root = src.resolve()
        found = sorted(p.relative_to(root).as_posix() for p in find_images(root))
        top_files = [p for p in found if "/" not in p]
        tree = bool(found) and not top_files
        kind = "imagefolder" if tree else "folder"
    elif src.is_file():
        root, found, kind = _read_list(src)
        tree = False
    else:
        raise VisUsageError(f"`dataset` {str(source)!r} does not exist; give a folder of images, an "
                            "ImageFolder tree or a text file with one image path per line")
    if limit is not None:
        found = found[:limit]
    if not found:
        raise VisUsageError(f"`dataset` {str(source)!r} has no images (looked for "
                            f"{', '.join(IMAGE_SUFFIXES)})")
    classes = [p.split("/", 1)[0] for p in found] if tree else []
    return ImageList(root=root, paths=found, kind=kind, classes=classes)


def _read_list(path: Path) -> tuple[Path, list[str], str]:
    if path.suffix.lower() in IMAGE_SUFFIXES:
        raise VisUsageError(f"`dataset` {str(path)!r} is an image file; give a folder of images or a text file "
                            "with one image path per line")
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise VisUsageError(f"cannot read dataset list {str(path)!r}: {exc}") from None
    entries = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
    absolute = [Path(e) if Path(e).is_absolute() else (path.parent / e) for e in entries]
    absolute = [Path(os.path.abspath(p)) for p in absolute]
    if not absolute:
        return path.parent.resolve(), [], "list"
    if not any(p.is_file() for p in absolute):
        raise VisUsageError(f"none of the {len(absolute)} paths listed in `dataset` {str(path)!r} is a file "
                            f"(the first: {str(absolute[0])!r}); is it a list of images?")
    root = Path(os.path.commonpath([str(p.parent) for p in absolute]))
    return root, [p.relative_to(root).as_posix() for p in absolute], "list"


@dataclass(frozen=True)
class Transform:
    """Resize the shorter side to `resize`, centre-crop `crop` (images stay RGB 0–1; the model's
    normalisation is applied later, on the device)."""

    resize: int
    crop: int

    def __call__(self, path: Path, max_pixels: int | None = None) -> torch.Tensor:
        image = open_image(path) if max_pixels is None else open_image(path, max_pixels)
        image = resize_center_crop(image, self.resize, self.crop)
        array = np.asarray(image, dtype=np.uint8)
        return torch.from_numpy(array.copy()).permute(2, 0, 1)

    def to_dict(self) -> dict:
        return {"resize": self.resize, "crop": self.crop}


class MiningDataset(Dataset):
    """Items ``(index, uint8 image [3, crop, crop], ok)``; a file that fails to decode gives zeros and
    ``ok = False`` instead of raising, so one bad file never stops a run."""

    def __init__(self, images: ImageList, transform: Transform, indices: Sequence[int]):
        self.images, self.transform, self.indices = images, transform, list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int):
        index = self.indices[position]
        try:
            return index, self.transform(self.images.absolute(index)), True
        except Exception:  # noqa: BLE001 - any decode failure means "skip this file"
            return index, torch.zeros(3, self.transform.crop, self.transform.crop, dtype=torch.uint8), False


def make_loader(images: ImageList, transform: Transform, indices: Sequence[int], batch_size: int,
                workers: int = 0) -> DataLoader:
    """An in-order DataLoader over `indices` (decoding in `workers` processes)."""
    if batch_size < 1:
        raise VisUsageError(f"`batch_size` must be at least 1, got {batch_size}")
    return DataLoader(MiningDataset(images, transform, indices), batch_size=batch_size, shuffle=False,
                      num_workers=worker_count(workers), persistent_workers=False)
