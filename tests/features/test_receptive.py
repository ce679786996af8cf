"""Receptive fields: published numbers, and the traced geometry against an empirical field (the
non-zero region of one unit's input gradient, with every weight positive so nothing cancels)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from vistoolbox import load_model, trace_geometry, unit_box
from vistoolbox.features.receptive import Field

from gradient_field import check_layers


def test_published_numbers(alexnet_random):
    geo = trace_geometry(alexnet_random.module, 224)
    assert geo[alexnet_random.resolve("conv4")].field.size == (131, 131)
    assert geo[alexnet_random.resolve("conv4")].field.stride == (16, 16)
    assert geo[alexnet_random.resolve("pool5")].field.size == (195, 195)
    assert geo[alexnet_random.resolve("pool5")].field.stride == (32, 32)
    assert geo[alexnet_random.resolve("fc6")].field.is_global
    vgg = load_model("vgg16", "random")
    geo = trace_geometry(vgg.module, 224)
    assert geo[vgg.resolve("conv5_3")].field.size == (196, 196)
    assert geo[vgg.resolve("conv5_3")].field.stride == (16, 16)
    assert geo[vgg.resolve("pool5")].field.size == (212, 212)
    assert geo[vgg.resolve("pool5")].field.stride == (32, 32)


def test_empirical_alexnet(alexnet_random):
    m = alexnet_random
    check_layers(m.module, [m.resolve(n) for n in ("conv1", "pool1", "conv3", "conv5", "pool5")], (227, 227))


def test_empirical_vgg16():
    m = load_model("vgg16", "random")
    check_layers(m.module, [m.resolve(n) for n in ("conv2_1", "conv5_3")], (224, 224))


def test_empirical_resnet18_branches(resnet18_random):
    check_layers(resnet18_random.module, ["maxpool", "layer1.0", "layer2.0", "layer3.1", "layer4"], (224, 224))


class Branchy(nn.Module):
    """Dilation, asymmetric kernels/strides, ceil-mode pooling, and two branches that meet."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, dilation=2, stride=(1, 2), padding=1)
        self.b = nn.Conv2d(4, 4, (5, 3), stride=(2, 1), padding=(2, 0))
        self.pool = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.left = nn.Conv2d(4, 4, 1)
        self.right = nn.Conv2d(4, 4, (3, 5), padding=(1, 2), dilation=(1, 1))
        self.mix = nn.Conv2d(8, 2, 3, stride=2, padding=1)

    def forward(self, x):
        x = self.pool(torch.relu(self.b(self.a(x))))
        x = torch.cat([self.left(x), self.right(x) + self.left(x)], dim=1)
        return self.mix(x)


def test_empirical_synthetic_dilation_and_asymmetry():
    net = Branchy()
    geometry = trace_geometry(net, (61, 75))
    field = geometry["b"].field
    # a: k_eff 5, pad 1, jump (1,2); b: (5,3) pad (2,0) → size (5+4, 5+2·2), jump (2,2), offset (−1−2, −1−0)
    assert field.size == (9, 9) and field.stride == (2, 2) and field.offset == (-3, -1)
    check_layers(net, ["a", "b", "pool", "right", "mix"], (61, 75))


def test_unit_box_padding():
    field = Field(size=(11, 11), stride=(4, 4), offset=(-2, -2))
    box = unit_box(field, 0, 0, (20, 20))
    assert (box.top, box.left, box.bottom, box.right) == (0, 0, 9, 9)
    assert (box.pad_top, box.pad_left, box.pad_bottom, box.pad_right) == (2, 2, 0, 0)
    assert box.full_size == (11, 11)
    whole = unit_box(Field(is_global=True), 3, 3, (20, 30))
    assert (whole.bottom, whole.right, whole.full_size) == (20, 30, (20, 30))


@pytest.mark.parametrize("name", ["googlenet"])
def test_empirical_googlenet(name):
    m = load_model(name, "random")
    check_layers(m.module, ["maxpool2", "inception3a", "inception4a"], (224, 224))


def test_empirical_convnext_channels_last_detour():
    """ConvNeXt blocks permute to channels-last for LayerNorm/Linear and back: geometry survives."""
    m = load_model("convnext_tiny", "random").module
    geometry = trace_geometry(m, 96)
    assert geometry["features.1.0"].field.size == (28, 28) and geometry["features.1.0"].field.exact
    check_layers(m, ["features.1.0", "features.3.0"], (96, 96))
