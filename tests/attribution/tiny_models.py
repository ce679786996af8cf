"""Small models the attribution tests load as user code (``load_model(f"{FILE}:cnn", "random")``)."""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import torchvision
from torch import nn

__all__ = ["FILE", "ChannelsLast", "cnn", "hwc", "vit"]

FILE = Path(__file__).resolve()


def cnn() -> nn.Module:
    """conv-relu-pool-conv-relu-conv-relu, global average pool, 5 logits (32 px in: a 16x16 last map)."""
    return nn.Sequential(OrderedDict(
        features=nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                               nn.Conv2d(8, 12, 3, padding=1), nn.ReLU(), nn.Conv2d(12, 16, 3, padding=1),
                               nn.ReLU()),
        pool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(), fc=nn.Linear(16, 5)))


def vit() -> nn.Module:
    """torchvision's VisionTransformer at 32 px, patches of 8 (a 4x4 token grid plus the class token); its
    head, which torchvision initialises to zeros, gets random weights (zero logits have zero gradients)."""
    model = torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2,
                                                 hidden_dim=16, mlp_dim=32, num_classes=5)
    nn.init.normal_(model.heads.head.weight, std=0.5)
    return model


class ChannelsLast(nn.Module):
    """A conv, then a channels-last stage (LayerNorm and a Linear over the channels of ``[N, H, W, C]``, as
    in ConvNeXt), a GELU, global average pool and 5 logits."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 4, stride=4)
        self.norm = nn.LayerNorm(8)
        self.mix = nn.Linear(8, 12)
        self.act = nn.GELU()
        self.head = nn.Linear(12, 5)

    def forward(self, x):
        x = self.mix(self.norm(self.conv(x).permute(0, 2, 3, 1)))
        return self.head(self.act(x).mean((1, 2)))


def hwc() -> nn.Module:
    """:class:`ChannelsLast` (32 px in: an 8x8 channels-last map at ``mix``)."""
    return ChannelsLast()
