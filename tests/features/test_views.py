"""Deconvnet / backprop / guided-backprop views against hand-built references."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from vistoolbox import load_model
from vistoolbox.features.views import batch_views, unit_views
from vistoolbox.errors import VisUsageError


class _Rule(torch.autograd.Function):
    """Reference ReLU with a chosen backward, written independently of the library."""

    @staticmethod
    def forward(ctx, a, mode):
        ctx.save_for_backward(a)
        ctx.mode = mode
        return torch.where(a > 0, a, torch.zeros_like(a))

    @staticmethod
    def backward(ctx, g):
        (a,) = ctx.saved_tensors
        if ctx.mode == "deconv":
            return torch.where(g > 0, g, torch.zeros_like(g)), None
        return torch.where((g > 0) & (a > 0), g, torch.zeros_like(g)), None


def reference(model, image, stop: int, unit: int, y: int, x: int, mode: str) -> torch.Tensor:
    """Run alexnet.features[0..stop] by hand; ReLUs follow `mode`; gradient of the unit wrt the input."""
    inp = model.preprocessing.normalize(image.unsqueeze(0)).clone().requires_grad_(True)
    h = inp
    for layer in list(model.module.features)[: stop + 1]:
        if isinstance(layer, nn.ReLU):
            h = torch.relu(h) if mode == "backprop" else _Rule.apply(h, mode)
        else:
            h = layer(h)
    (grad,) = torch.autograd.grad(h[0, unit, y, x], inp)
    return grad[0]


@pytest.fixture(scope="module")
def alexnet():
    return load_model("alexnet", "random", seed=0, input_size=96)


@pytest.fixture(scope="module")
def image(astronaut):
    return torch.nn.functional.interpolate(astronaut, size=(96, 96), mode="area")[0]


@pytest.mark.parametrize("mode", ["backprop", "deconv", "guided"])
def test_views_match_a_hand_built_reference(alexnet, image, mode):
    views = unit_views(alexnet, image, "conv4", 11, 2, 3, [mode])
    ref = reference(alexnet, image, 8, 11, 2, 3, mode)  # features.8 = conv4
    assert views[mode].abs().sum() > 0
    torch.testing.assert_close(views[mode], ref, rtol=1e-4, atol=1e-6)


def test_one_forward_serves_every_mode(alexnet, image):
    """All three views from one call (one forward pass, one backward per mode) equal the references."""
    views = unit_views(alexnet, image, "conv4", 11, 2, 3)
    for mode in ("deconv", "backprop", "guided"):
        torch.testing.assert_close(views[mode], reference(alexnet, image, 8, 11, 2, 3, mode), rtol=1e-4, atol=1e-6)


def test_plain_gradient_is_autograd_of_the_unit(alexnet, image):
    inp = alexnet.preprocessing.normalize(image.unsqueeze(0)).requires_grad_(True)
    out = alexnet.module.features[:7](inp)  # features.6 is conv3
    (grad,) = torch.autograd.grad(out[0, 5, 1, 1], inp)
    torch.testing.assert_close(unit_views(alexnet, image, "conv3", 5, 1, 1, ["backprop"])["backprop"], grad[0])


def test_modes_differ_and_batch_equals_single(alexnet, image):
    views = unit_views(alexnet, image, "conv5", 3, 1, 1)
    assert set(views) == {"deconv", "backprop", "guided"}
    assert not torch.allclose(views["deconv"], views["guided"])
    flipped = image.flip(-1)
    batch = batch_views(alexnet, torch.stack([image, flipped]), "conv5", [3, 7], [1, 0], [1, 2], ["guided"])
    torch.testing.assert_close(batch["guided"][0], views["guided"])
    torch.testing.assert_close(batch["guided"][1], unit_views(alexnet, flipped, "conv5", 7, 0, 2, ["guided"])["guided"])


def test_views_outside_the_receptive_field_are_zero(alexnet, image):
    from vistoolbox.features.layers import layer_field
    from vistoolbox.features.receptive import unit_box

    _, field = layer_field(alexnet, "conv2", 96)
    box = unit_box(field, 2, 2, (96, 96))
    for mode, view in unit_views(alexnet, image, "conv2", 0, 2, 2).items():
        mask = torch.ones(96, 96, dtype=torch.bool)
        mask[box.top:box.bottom, box.left:box.right] = False
        assert view[:, mask].abs().max() == 0, mode
        assert view[:, ~mask].abs().max() > 0, mode


def test_resnet_views_and_fc(resnet18_random):
    img = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(0))
    views = unit_views(resnet18_random, img, "layer2.0.conv1", 4, 1, 1, ["backprop", "guided"])
    assert all(v.shape == (3, 64, 64) and v.abs().sum() > 0 for v in views.values())
    fc = unit_views(resnet18_random, img, "fc", 9, modes=["backprop"])["backprop"]
    inp = resnet18_random.preprocessing.normalize(img.unsqueeze(0)).requires_grad_(True)
    (grad,) = torch.autograd.grad(resnet18_random.module(inp)[0, 9], inp)
    torch.testing.assert_close(fc, grad[0])
    with pytest.raises(VisUsageError, match="valid: deconv, backprop, guided"):
        unit_views(resnet18_random, img, "fc", 1, modes=["saliency"])
