"""Deconvnet / backprop / guided-backprop views against hand-built references."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from vistoolbox import load_model
from vistoolbox.features.layers import layer_field
from vistoolbox.features.receptive import Box, Field, unit_box
from vistoolbox.features.views import batch_views, unit_views, view_patch, view_window
from vistoolbox.errors import VisUsageError
from vistoolbox.images import to_pil


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
    full = batch_views(alexnet, image.unsqueeze(0), "conv2", [0], [2], [2], windowed=False)
    for mode, view in full.items():
        view = view[0]
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


def _spread(shape: tuple[int, ...], few: bool) -> tuple[list[int], list[int]]:
    """Corners, edge middles, the centre and an off-centre position of a [C, H, W] map (`few`: two
    opposite corners, an edge middle and the centre)."""
    h, w = shape[1], shape[2]
    points = [(0, 0), (h - 1, w - 1), (h // 2, 0), (h // 2, w // 2), (0, w - 1), (h - 1, 0), (0, w // 2),
              (max(0, h - 2), min(w - 1, 2))]
    points = points[:4] if few else points
    return [p[0] for p in points], [p[1] for p in points]


@pytest.mark.parametrize("fixture, layers, size, modes", [
    ("alexnet", ["conv1", "conv2", "conv3", "conv5"], 96, ["deconv", "backprop", "guided"]),
    ("alexnet", ["conv2", "conv4"], 101, ["guided"]),                      # not a multiple of the stride
    ("resnet18_random", ["layer1.1.conv2", "layer2.0.downsample.0", "layer3.1.conv2"], 96, ["backprop"]),
    ("hed_vgg16", ["conv3_3", "conv4_3", "conv5_3"], 224, ["guided"]),
])
def test_windowed_views_equal_the_whole_image_pass(request, fixture, layers, size, modes):
    model = request.getfixturevalue(fixture)
    gen = torch.Generator().manual_seed(3)
    for layer in layers:
        shape, field = layer_field(model, layer, size)
        ys, xs = _spread(shape, few=fixture == "hed_vgg16")
        images = torch.rand(len(ys), 3, size, size, generator=gen)
        units = torch.randint(0, shape[0], (len(ys),), generator=gen).tolist()
        windowed = batch_views(model, images, layer, units, ys, xs, modes)
        whole = batch_views(model, images, layer, units, ys, xs, modes, windowed=False)
        for mode in modes:
            scale = float(whole[mode].abs().max())
            assert scale > 0, (layer, mode)
            torch.testing.assert_close(windowed[mode], whole[mode], rtol=1e-4, atol=1e-5 * scale)
        windows = [view_window(field, y, x, (size, size)) for y, x in zip(ys, xs)]
        if layer in ("conv1", "conv3_3", "conv4_3", "layer1.1.conv2"):  # these really run on windows
            assert all((b - t) * (r - l) < size * size / 2 for t, b, l, r in windows), layer


def test_view_window_holds_the_field_on_the_stride_grid():
    field = Field((196, 196), (16, 16), (-90, -90))  # VGG16 conv5_3 at 224
    for y in range(14):
        top, bottom, left, right = view_window(field, y, 13 - y, (224, 224))
        box = unit_box(field, y, 13 - y, (224, 224))
        assert top % 16 == 0 and left % 16 == 0 and bottom - top == 208 and right - left == 208
        assert top <= box.top and box.bottom <= bottom and left <= box.left and box.right <= right


def test_view_patch_sets_the_contrast_over_the_field():
    gen = torch.Generator().manual_seed(0)
    view = torch.zeros(3, 50, 50)
    view[:, 10:30, 5:25] = torch.randn(3, 20, 20, generator=gen) * 1e-3
    view[0, 12, 7] = 1.0                                   # one outlier: clipped, the rest keeps its contrast
    box = Box(top=10, left=0, bottom=30, right=25, pad_top=4, pad_left=5, pad_bottom=0, pad_right=0)
    patch = view_patch(view, box)
    assert patch.shape == (3, 24, 30)
    assert (patch[:, :4] == 0.5).all() and (patch[:, :, :5] == 0.5).all()          # outside the image: grey
    inner = patch[:, 4:, 5:]
    magnitude = view[:, 10:30, 0:25].abs().amax(0)
    level = float(magnitude.flatten().sort().values[int(np.ceil(0.995 * (magnitude.numel() - 1)))])
    scale = level * 255 / 253                             # that pixel sits one 8-bit level inside the range
    torch.testing.assert_close(inner, (view[:, 10:30, 0:25] / (2 * scale) + 0.5).clamp(0, 1))
    assert float((magnitude > level).float().mean()) <= 0.005 and float(inner.std()) > 0.1  # ≤ 0.5 % clipped
    stored = np.asarray(to_pil(inner)).astype(int)        # as the PNG stores it: 0 or 255 in any channel
    assert ((stored == 0) | (stored == 255)).any(-1).mean() <= 0.005
