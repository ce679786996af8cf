"""Feed-forward stylizer: generator shape rules, the file format, applying it, training, resuming,
texture mode and the two commands."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from PIL import Image
from torch import nn

from vistoolbox import VisUsageError
from vistoolbox.images import load_tensor, save_png
from vistoolbox.style.generator import GeneratorConfig, StyleGenerator
from vistoolbox.style.stylizer import (Stylizer, load_stylizer, save_stylizer, stylize, synthesize_texture)

TINY = dict(width=8, res_blocks=1)
ALEX_LAYERS = ["relu1", "relu2"]


def _stylizer(mode: str = "image", seed: int = 0) -> Stylizer:
    torch.manual_seed(seed)
    gen = StyleGenerator(GeneratorConfig(mode=mode, **TINY))
    with torch.no_grad():  # non-trivial instance-norm affine parameters, so the round trip covers them
        for m in gen.modules():
            if isinstance(m, nn.InstanceNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return Stylizer(generator=gen.eval(), style={"name": "s.png", "sha256": "0" * 64, "size": [8, 8]},
                    training={"steps": 3}, history={"step": [1, 2, 3], "total": [3.0, 2.0, 1.0],
                                                   "content": [0.0] * 3, "style": [3.0, 2.0, 1.0], "tv": [0.0] * 3})


def _images(folder, sizes, seed=0):
    """Small smooth random colour images written as PNGs (real files for the dataset)."""
    g = torch.Generator().manual_seed(seed)
    paths = []
    for i, (h, w) in enumerate(sizes):
        low = torch.rand(1, 3, 4, 4, generator=g)
        image = nn.functional.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)
        paths.append(save_png(image.clamp(0, 1), folder / f"img_{i}.png"))
    return paths


def _style_image(path):
    """Stripes: a style with strong, easily measured second-order statistics."""
    y = torch.arange(48).float()
    stripes = (torch.sin(y[None, :] / 2.0 + y[:, None] / 3.0) > 0).float()
    image = torch.stack([stripes, 1 - stripes, 0.5 * stripes]).unsqueeze(0)
    return save_png(image, path)


# --------------------------------------------------------------------------- generator
def test_generator_architecture_and_any_size():
    gen = StyleGenerator(GeneratorConfig(**TINY))
    kinds = {type(m) for m in gen.modules()}
    assert nn.InstanceNorm2d in kinds and nn.ReflectionPad2d in kinds and nn.Upsample in kinds
    assert nn.ConvTranspose2d not in kinds and nn.BatchNorm2d not in kinds
    assert all(m.mode == "nearest" for m in gen.modules() if isinstance(m, nn.Upsample))
    assert all(m.padding == (0, 0) for m in gen.modules() if isinstance(m, nn.Conv2d))  # padding by reflection
    for h, w in [(1, 1), (5, 7), (37, 50), (65, 33)]:
        out = gen(torch.rand(2, 3, h, w))
        assert out.shape == (2, 3, h, w) and 0 <= out.min() and out.max() <= 1
    with pytest.raises(VisUsageError):
        GeneratorConfig(mode="video")


# --------------------------------------------------------------------------- file format
def test_save_load_round_trip_is_exact(tmp_path):
    original = _stylizer()
    path = save_stylizer(original, tmp_path / "s.pt")
    raw = torch.load(path, weights_only=True)  # only plain types in the file
    assert raw["format"] == "vistoolbox.stylizer" and raw["config"]["width"] == 8
    loaded = load_stylizer(path)
    x = torch.rand(2, 3, 21, 30)
    assert torch.equal(original.generator(x), loaded.generator(x))
    assert loaded.history == original.history and loaded.style == original.style and loaded.steps == 3
    assert [p.name for p in tmp_path.iterdir()] == ["s.pt"]  # atomic write leaves no temp file


def test_load_errors_are_usage_errors(tmp_path):
    with pytest.raises(VisUsageError, match="does not exist"):
        load_stylizer(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(VisUsageError, match="cannot read"):
        load_stylizer(tmp_path / "junk.pt")
    torch.save({"a": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(VisUsageError, match="not a vistoolbox stylizer"):
        load_stylizer(tmp_path / "other.pt")


# --------------------------------------------------------------------------- applying
def test_stylize_keeps_sizes_batches_and_blends():
    stylizer = _stylizer()
    g = torch.Generator().manual_seed(1)
    images = [torch.rand(3, h, w, generator=g) for h, w in [(17, 23), (17, 23), (31, 9), (17, 23)]]
    outs = stylize(stylizer, images, batch_size=2)
    assert [o.shape[-2:] for o in outs] == [im.shape[-2:] for im in images]
    for image, out in zip(images, outs):  # batching never changes a result (instance norm is per image)
        alone = stylizer.generator(image.unsqueeze(0))
        assert torch.allclose(out, alone, atol=1e-5)
    assert torch.equal(stylize(stylizer, images, strength=0.0)[2], images[2].unsqueeze(0))
    half = stylize(stylizer, images[:1], strength=0.5)[0]
    assert torch.allclose(half, 0.5 * images[0].unsqueeze(0) + 0.5 * outs[0], atol=1e-6)
    batch = torch.stack(images[:2])
    assert stylize(stylizer, batch).shape == batch.shape
    with pytest.raises(VisUsageError, match="strength"):
        stylize(stylizer, images, strength=1.5)
    with pytest.raises(VisUsageError, match="texture mode"):
        stylize(_stylizer("texture"), images)
