"""A tiny user model (a file.py:callable spec) and a few small photos: what the CLI mining tests of
resume edges and damaged runs start from."""
from __future__ import annotations

from pathlib import Path

from PIL import Image

__all__ = ["tiny_mine_args"]

PHOTOS = ["astronaut", "coffee", "chelsea", "rocket", "brick", "camera"]


def tiny_mine_args(root: Path, images: int, k: int) -> list[str]:
    """Write ``root/tiny.py`` (two convs) and `images` 48×40 photos into ``root/data``; return the
    `vis mine` arguments that mine its last conv (without ``--out``)."""
    from skimage import data

    (root / "tiny.py").write_text("import torch.nn as nn\ndef make():\n"
                                  "    return nn.Sequential(nn.Conv2d(3, 4, 5, stride=2), nn.ReLU(), nn.Conv2d(4, 4, 3))\n")
    (root / "data").mkdir()
    for i, name in enumerate(PHOTOS[:images]):
        Image.fromarray(getattr(data, name)()).convert("RGB").resize((48, 40)).save(root / "data" / f"{i}.png")
    return ["mine", "--model", f"{root / 'tiny.py'}:make", "--weights", "random", "--input-size", "32",
            "--dataset", str(root / "data"), "--layers", "2", "--k", str(k), "--batch-size", "2", "--quiet"]
