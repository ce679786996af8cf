"""The datasets of ``vis train``: Fashion-MNIST from Debian's ``dataset-fashion-mnist`` files (idx
format, gzip), or an ImageFolder tree (``FOLDER/<class>/<images>``). Both give 0–1 RGB batches at the
model's input size (grey as three equal channels) with their labels."""
from __future__ import annotations

import gzip
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import VisUsageError
from ..images import find_images, open_image, resize_center_crop, to_tensor

__all__ = ["FASHION_CLASSES", "FASHION_MNIST", "Dataset", "Split", "fashion_mnist", "fashion_root", "image_folder",
           "load_dataset", "read_idx"]

FASHION_MNIST = "fashion-mnist"
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")
#: Where Debian's ``dataset-fashion-mnist`` installs the files (``$VISTOOLBOX_FASHION_MNIST`` overrides it).
FASHION_ROOT = "/usr/share/datasets/fashion-mnist"
_FASHION_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                  "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
#: idx type codes → numpy dtypes (big-endian), from the format's definition (LeCun's MNIST page).
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """An idx file (``.gz`` or plain): two zero bytes, a type code, the number of dimensions, each
    dimension as a big-endian int32, then the values in C order."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as fh:
        data = fh.read()
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] not in _IDX_TYPES:
        raise VisUsageError(f"{str(path)!r} is not an idx file")
    ndim = data[3]
    dims = np.frombuffer(data, dtype=">i4", count=ndim, offset=4).astype(np.int64)
    dtype = np.dtype(_IDX_TYPES[data[2]])
    count = int(np.prod(dims)) if ndim else 1
    if len(data) - 4 - 4 * ndim < count * dtype.itemsize:
        raise VisUsageError(f"{str(path)!r} ends early (an idx file of shape {tuple(dims)})")
    return np.frombuffer(data, dtype=dtype, count=count, offset=4 + 4 * ndim).reshape(tuple(dims))


@dataclass
class Split:
    """One split: images in memory (``[N, H, W]`` uint8) or as files, their labels, the input size."""

    labels: torch.Tensor
    size: int
    pixels: torch.Tensor | None = None
    paths: list[Path] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, indices: Sequence[int] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, 3, size, size]`` 0–1 images and ``[B]`` labels."""
        index = torch.as_tensor(indices, dtype=torch.long)
        if self.pixels is not None:
            x = self.pixels[index].float().div(255).unsqueeze(1)
            if x.shape[-1] != self.size or x.shape[-2] != self.size:
                x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
            x = x.expand(-1, 3, -1, -1).contiguous()
        else:
            x = torch.cat([to_tensor(resize_center_crop(open_image(self.paths[i]), self.size, self.size))
                           for i in index.tolist()])
        return x, self.labels[index]


@dataclass
class Dataset:
    """A named dataset: its classes and its train and test splits."""

    name: str
    classes: list[str]
    train: Split
    test: Split

    def describe(self) -> dict[str, Any]:
        """What a manifest records: ``{root, kind, classes, train, test}``."""
        return {"root": self.name, "kind": "fashion-mnist" if self.name == FASHION_MNIST else "imagefolder",
                "classes": self.classes, "train": len(self.train), "test": len(self.test)}


def fashion_root() -> Path:
    return Path(os.environ.get("VISTOOLBOX_FASHION_MNIST", FASHION_ROOT))


def fashion_mnist(size: int = 28, limit: int | None = None) -> Dataset:
    """Fashion-MNIST (60 000 train, 10 000 test images of 28×28 px, 10 classes); `limit` keeps the
    first N images of each split."""
    root = fashion_root()
    missing = [name for pair in _FASHION_FILES.values() for name in pair if not (root / name).is_file()]
    if missing:
        raise VisUsageError(f"Fashion-MNIST is not installed ({root}/{missing[0]} is missing): install the Debian "
                            "package dataset-fashion-mnist (apt install dataset-fashion-mnist)")
    splits = {}
    for split, (images, labels) in _FASHION_FILES.items():
        pixels = torch.from_numpy(read_idx(root / images)[:limit].copy())
        targets = torch.from_numpy(read_idx(root / labels)[:limit].astype(np.int64))
        splits[split] = Split(targets, size, pixels=pixels)
    return Dataset(FASHION_MNIST, list(FASHION_CLASSES), splits["train"], splits["test"])


def _class_images(folder: Path) -> dict[str, list[Path]]:
    classes = {p.name: find_images(p) for p in sorted(folder.iterdir()) if p.is_dir() and not p.name.startswith(".")}
    return {name: files for name, files in classes.items() if files}


def _interleaved(per_class: list[list[Path]]) -> list[tuple[Path, int]]:
    """Samples in round-robin class order, so that the first N of them are balanced."""
    out = []
    for rank in range(max(map(len, per_class), default=0)):
        out.extend((files[rank], label) for label, files in enumerate(per_class) if rank < len(files))
    return out


def _split(samples: list[tuple[Path, int]], size: int, limit: int | None) -> Split:
    samples = samples[:limit]
    return Split(torch.tensor([label for _, label in samples], dtype=torch.long), size,
                 paths=[path for path, _ in samples])


def image_folder(folder: str | Path, size: int, limit: int | None = None) -> Dataset:
    """An ImageFolder tree: ``FOLDER/<class>/…`` (test images: ``FOLDER/train`` and ``FOLDER/test`` or
    ``FOLDER/val`` trees when present, else every tenth image of each class)."""
    root = Path(folder).resolve()
    if not root.is_dir():
        raise VisUsageError(f"`dataset` {str(folder)!r} is neither fashion-mnist nor a folder")
    train_dir = root / "train"
    test_dir = next((root / n for n in ("test", "val") if (root / n).is_dir()), None)
    if train_dir.is_dir() and test_dir is not None and _class_images(train_dir):
        train, test = _class_images(train_dir), _class_images(test_dir)
        classes = sorted(train)
        unknown_classes = sorted(set(test) - set(train))
        if unknown_classes:
            raise VisUsageError(f"`dataset` {str(folder)!r}: {test_dir.name}/ has classes train/ lacks: "
                                f"{', '.join(unknown_classes[:5])}")
        train_samples = _interleaved([train[c] for c in classes])
        test_samples = _interleaved([test.get(c, []) for c in classes])
    else:
        found = _class_images(root)
        if len(found) < 2:
            raise VisUsageError(f"`dataset` {str(folder)!r} has {len(found)} class folder(s) with images; an "
                                "ImageFolder tree needs FOLDER/<class>/<images> for at least 2 classes "
                                "(or give fashion-mnist)")
        classes = sorted(found)
        held = [[f for i, f in enumerate(found[c]) if i % 10 == 9] for c in classes]
        kept = [[f for i, f in enumerate(found[c]) if i % 10 != 9] for c in classes]
        train_samples, test_samples = _interleaved(kept), _interleaved(held)
    if not test_samples:
        raise VisUsageError(f"`dataset` {str(folder)!r} has no test images (give each class 10 or more, or a "
                            "test/ tree)")
    return Dataset(str(root), classes, _split(train_samples, size, limit), _split(test_samples, size, limit))


def load_dataset(spec: str, size: int, limit: int | None = None) -> Dataset:
    """``fashion-mnist`` or an ImageFolder path."""
    if spec == FASHION_MNIST:
        return fashion_mnist(size, limit)
    return image_folder(spec, size, limit)
