"""Every CAM method against an independent computation written here (plain forward hooks, autograd on
the whole model, the token grid and the channels-last map reshaped by hand), on a small CNN, a small
ViT and a small channels-last (ConvNeXt-style) model; the units behind a
place sum to the map before its ReLU."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vistoolbox import VisUsageError, cam, load_model

from tests.attribution.tiny_models import FILE

METHODS = ("gradcam", "gradcam++", "xgradcam", "hirescam", "layercam", "eigencam", "scorecam", "ablationcam")
CASES = {"cnn": "features.5", "vit": "encoder.layers.encoder_layer_1.ln_1", "hwc": "mix"}


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request):
    model = load_model(f"{FILE}:{request.param}", "random", seed=1, input_size=32)
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    return request.param, model, CASES[request.param], images


def to_grid(kind: str, tensor: torch.Tensor) -> torch.Tensor:
    """The test's own reshape: ViT tokens [N, 17, C] → [N, C, 4, 4] without the class token; [N, H, W, C]
    → [N, C, H, W]."""
    if kind == "vit":
        return tensor[:, 1:, :].transpose(1, 2).reshape(tensor.shape[0], tensor.shape[2], 4, 4)
    if kind == "hwc":
        return tensor.permute(0, 3, 1, 2)
    return tensor


def logits_and_layer(model, layer, x, edit=None):
    """Full forward of the plain module with a hook keeping (and optionally editing) `layer`'s output."""
    kept = {}

    def hook(_m, _i, out):
        out = edit(out) if edit else out
        kept["a"] = out
        return out

    handle = model.module.get_submodule(layer).register_forward_hook(hook)
    try:
        logits = model.module(x)
    finally:
        handle.remove()
    return logits, kept["a"]


def reference(kind, model, layer, images, method, classes):
    """The map before its ReLU, [N, h, w], by the methods' formulas on hooked values."""
    x = model.preprocessing.normalize(images).requires_grad_(True)
    logits, raw = logits_and_layer(model, layer, x)
    score = logits[torch.arange(len(classes)), classes]
    grad = torch.autograd.grad(score.sum(), raw)[0]
    a, g = to_grid(kind, raw.detach()), to_grid(kind, grad)
    if method == "gradcam":
        return (g.mean((2, 3))[:, :, None, None] * a).sum(1)
    if method == "gradcam++":
        num = g ** 2
        den = 2 * g ** 2 + a.sum((2, 3))[:, :, None, None] * g ** 3 + 1e-6
        alpha = torch.where(g != 0, num / den, torch.zeros_like(g))
        weights = (torch.relu(g) * alpha).sum((2, 3))
        return (weights[:, :, None, None] * a).sum(1)
    if method == "xgradcam":
        weights = (g * a).sum((2, 3)) / (a.sum((2, 3)) + 1e-7)
        return (weights[:, :, None, None] * a).sum(1)
    if method == "hirescam":
        return (g * a).sum(1)
    if method == "layercam":
        return (torch.relu(g) * a).sum(1)
    if method == "eigencam":
        out = []
        for sample in a.numpy().astype(np.float64):
            flat = sample.reshape(sample.shape[0], -1).T
            flat = flat - flat.mean(0)
            v = np.linalg.svd(flat, full_matrices=False)[2][0]
            v = v if v.sum() >= 0 else -v
            out.append(torch.from_numpy((flat @ v).reshape(sample.shape[1:])).float())
        return torch.stack(out)
    with torch.no_grad():
        if method == "scorecam":
            weights = []
            for i in range(len(classes)):
                up = F.interpolate(a[i:i + 1], size=(32, 32), mode="bilinear", align_corners=True)[0]
                scores = []
                for k in range(up.shape[0]):
                    mask = (up[k] - up[k].min()) / (up[k].max() - up[k].min() + 1e-8)
                    scores.append(model.module(x[i:i + 1] * mask)[0, classes[i]])
                weights.append(torch.softmax(torch.stack(scores), 0))
            return (torch.stack(weights)[:, :, None, None] * a).sum(1)
        if method == "ablationcam":
            channel_dim = {"vit": 2, "hwc": 3, "cnn": 1}[kind]
            weights = []
            for i in range(len(classes)):
                base = model.module(x[i:i + 1])[0, classes[i]]
                row = []
                for k in range(a.shape[1]):
                    def zero(out, k=k):
                        out = out.clone()
                        out.select(channel_dim, k).zero_()
                        return out
                    row.append((base - logits_and_layer(model, layer, x[i:i + 1], zero)[0][0, classes[i]]) / base)
                weights.append(torch.stack(row))
            return (torch.stack(weights)[:, :, None, None] * a).sum(1)
    raise AssertionError(method)


@pytest.mark.parametrize("method", METHODS)
def test_map_matches_hooks_and_autograd(case, method):
    kind, model, layer, images = case
    result = cam(model, images, layer, target="class:2", method=method, batch=7)
    pre = reference(kind, model, layer, images, method, torch.tensor([2, 2]))
    assert result.maps.shape == pre.shape
    torch.testing.assert_close(result.maps, pre.clamp_min(0), atol=1e-5, rtol=1e-4)
    # the units behind a place: their contributions sum to the map's value there before the ReLU
    assert result.contributions is not None
    torch.testing.assert_close(result.contributions.sum(1), pre, atol=1e-5, rtol=1e-4)
    for i, row in enumerate(result.record["images"]):
        behind = row["units_behind"]
        y, x = behind["y"], behind["x"]
        assert (y, x) == divmod(int(result.maps[i].argmax()), result.maps.shape[2])
        assert behind["pre_relu"] == pytest.approx(float(pre[i, y, x]), abs=1e-5, rel=1e-4)
        listed = [u["contribution"] for u in behind["units"]]
        assert len(listed) == min(10, result.contributions.shape[1]) and listed == sorted(listed, reverse=True)
        assert listed[0] == pytest.approx(float(result.contributions[i, :, y, x].max()), abs=1e-6)


def test_top_is_each_images_top_class_and_upsampled_is_bilinear(case):
    kind, model, layer, images = case
    result = cam(model, images, layer)
    with torch.no_grad():
        top = model.module(model.preprocessing.normalize(images)).argmax(1)
    assert [row["target_index"] for row in result.record["images"]] == top.tolist()
    pre = reference(kind, model, layer, images, "gradcam", top)
    torch.testing.assert_close(result.maps, pre.clamp_min(0), atol=1e-5, rtol=1e-4)
    expected = F.interpolate(result.maps[:, None], size=(32, 32), mode="bilinear", align_corners=False)[:, 0]
    torch.testing.assert_close(result.upsampled, expected)


def test_unit_target_is_the_channel_mean_and_stops_at_its_layer(case):
    kind, model, layer, images = case
    target_layer = {"cnn": "features.6", "vit": "encoder.ln", "hwc": "act"}[kind]
    result = cam(model, images, layer, target=f"unit:{target_layer}:3")
    x = model.preprocessing.normalize(images)
    kept = {}
    handle = model.module.get_submodule(target_layer).register_forward_hook(lambda m, i, o: kept.setdefault("t", o))
    raw_layer = {}
    handle2 = model.module.get_submodule(layer).register_forward_hook(lambda m, i, o: raw_layer.setdefault("a", o))
    x.requires_grad_(True)
    try:
        model.module(x)
    finally:
        handle.remove()
        handle2.remove()
    score = to_grid(kind, kept["t"])[:, 3].mean((1, 2))
    assert [row["score"] for row in result.record["images"]] == pytest.approx(score.tolist(), rel=1e-5)
    grad = to_grid(kind, torch.autograd.grad(score.sum(), raw_layer["a"])[0])
    a = to_grid(kind, raw_layer["a"].detach())
    torch.testing.assert_close(result.maps, (grad.mean((2, 3))[:, :, None, None] * a).sum(1).clamp_min(0),
                               atol=1e-5, rtol=1e-4)


def test_eigen_smoothing_is_the_principal_component_of_the_terms(case):
    kind, model, layer, images = case
    plain = cam(model, images, layer, target="class:1", method="layercam")
    smooth = cam(model, images, layer, target="class:1", method="layercam", smooth="eigen")
    terms = plain.contributions.double()
    for i in range(len(images)):
        flat = terms[i].flatten(1).T.numpy()
        flat = flat - flat.mean(0)
        v = np.linalg.svd(flat, full_matrices=False)[2][0]
        v = v if v.sum() >= 0 else -v
        expected = torch.from_numpy((flat @ v).reshape(smooth.maps.shape[1:])).float().clamp_min(0)
        torch.testing.assert_close(smooth.maps[i], expected, atol=1e-5, rtol=1e-4)


def test_aug_smoothing_averages_flipped_and_scaled_views(case):
    kind, model, layer, images = case
    result = cam(model, images[:1], layer, target="class:0", smooth="aug")
    x = model.preprocessing.normalize(images[:1])
    views = []
    for flip in (False, True):
        for factor in (0.9, 1.0, 1.1):
            view = (x * factor).flip(-1) if flip else x * factor
            pre = reference(kind, model, layer, model.preprocessing.denormalize(view), "gradcam", torch.tensor([0]))
            views.append(pre.clamp_min(0).flip(-1) if flip else pre.clamp_min(0))
    torch.testing.assert_close(result.maps, torch.stack(views).mean(0), atol=1e-5, rtol=1e-4)
    assert result.contributions is None and result.record["images"][0]["units_behind"] is None


def test_guided_gradcam_is_guided_backprop_times_the_map(case):
    kind, model, layer, images = case
    result = cam(model, images, layer, target="class:4", guided=True)
    x = model.preprocessing.normalize(images).requires_grad_(True)

    def guided_relu(module, inputs, output):  # hook form of the guided rule, independent of the library's
        return GuidedReLU.apply(inputs[0])

    handles = [m.register_forward_hook(guided_relu) for m in model.module.modules() if isinstance(m, torch.nn.ReLU)]
    try:
        score = model.module(x)[:, 4].sum()
    finally:
        for handle in handles:
            handle.remove()
    gb = torch.autograd.grad(score, x)[0]
    up = result.upsampled
    low, high = up.flatten(1).min(1).values, up.flatten(1).max(1).values
    scaled = (up - low[:, None, None]) / (high - low)[:, None, None]
    torch.testing.assert_close(result.guided, gb * scaled[:, None], atol=1e-6, rtol=1e-4)


class GuidedReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return a.clamp_min(0)

    @staticmethod
    def backward(ctx, grad):
        (a,) = ctx.saved_tensors
        return grad.clamp_min(0) * (a > 0).to(grad.dtype)


def test_at_picks_the_place_and_outside_is_refused(case):
    kind, model, layer, images = case
    result = cam(model, images[:1], layer, target="class:0", at=(1, 2))
    behind = result.record["images"][0]["units_behind"]
    assert (behind["y"], behind["x"]) == (1, 2)
    assert behind["pre_relu"] == pytest.approx(float(result.contributions[0, :, 1, 2].sum()), abs=1e-6)
    h, w = result.maps.shape[1:]
    with pytest.raises(VisUsageError, match="outside the map"):
        cam(model, images[:1], layer, target="class:0", at=(h, 0))


def test_bad_layers_and_targets_are_usage_errors(case):
    kind, model, layer, images = case
    fc = {"cnn": "fc", "vit": "heads.head", "hwc": "head"}[kind]
    with pytest.raises(VisUsageError, match="fully connected"):
        cam(model, images[:1], fc)
    with pytest.raises(VisUsageError, match="out of range"):
        cam(model, images[:1], layer, target="class:5")
    early = {"cnn": "features.0", "vit": "encoder.layers.encoder_layer_0", "hwc": "conv"}[kind]
    late = {"cnn": "features.5", "vit": "encoder.layers.encoder_layer_1", "hwc": "act"}[kind]
    with pytest.raises(VisUsageError, match="no gradient reaches it"):
        cam(model, images[:1], late, target=f"unit:{early}:0")
    with pytest.raises(VisUsageError, match="valid: gradcam"):
        cam(model, images[:1], layer, method="gradcam+++")
    if kind == "cnn":
        with pytest.raises(VisUsageError, match="single position"):
            cam(model, images[:1], "pool")


def test_class_target_needs_logits(hed_or_headless):
    model, layer = hed_or_headless
    with pytest.raises(VisUsageError, match="needs logits"):
        cam(model, torch.rand(1, 3, 32, 32), layer, target="class:0")
    result = cam(model, torch.rand(1, 3, 32, 32), layer)  # top: the strongest unit of the deepest layer
    assert result.record["target_resolved"].startswith("unit:") and result.maps.shape[0] == 1


@pytest.fixture(scope="module")
def hed_or_headless():
    """A model without a classifier head: VGG16's conv part with random weights (what hed is, untrained)."""
    model = load_model("vgg16", "random", seed=0, input_size=32)
    model.module = model.module.features
    model.has_classifier = False
    model.memo.clear()
    return model, "28"
