"""The shared feature extractor: pre-/post-ReLU values, early stop, branching graphs, gradients."""
from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from vistoolbox import FeatureExtractor, VisUsageError


def test_pre_and_post_relu_with_inplace_relu():
    # a fresh torchvision AlexNet has ReLU(inplace=True) right after each conv
    raw = torchvision.models.alexnet(weights=None).eval()
    assert raw.features[1].inplace
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        plain = nn.Sequential(*[m for m in torchvision.models.alexnet(weights=None).features]).eval()
        plain.load_state_dict(raw.features.state_dict())
        for m in plain:
            if isinstance(m, nn.ReLU):
                m.inplace = False
        ref_conv = plain[:9](x)
        with FeatureExtractor(raw, ["features.8", "features.9"]) as fx:
            out = fx(x)
    assert torch.allclose(out["features.8"], ref_conv, atol=1e-5)
    assert (out["features.8"] < 0).any(), "conv output must be pre-ReLU"
    assert torch.allclose(out["features.9"], ref_conv.clamp_min(0), atol=1e-5)
    assert raw.features[1].inplace and raw.features[9].inplace, "the caller's module is left as it was"


def test_functional_inplace_add_is_detected(resnet18_random):
    # ResNet's BasicBlock does `out += identity` on bn2's output: the extractor must return bn2's value
    m = resnet18_random.module
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        h = m.maxpool(m.relu(m.bn1(m.conv1(x))))
        block = m.layer1[0]
        ref = block.bn2(block.conv2(block.relu(block.bn1(block.conv1(h)))))
        out = FeatureExtractor(m, ["layer1.0.bn2"])(x)["layer1.0.bn2"]
    assert torch.allclose(out, ref, atol=1e-5)


def test_early_stop_runs_nothing_past_the_deepest_layer(alexnet_random):
    ran = []
    handles = [mod.register_forward_hook(lambda *a, n=name: ran.append(n))
               for name, mod in alexnet_random.module.named_modules() if name]
    try:
        with torch.no_grad(), FeatureExtractor(alexnet_random, ["conv2", "conv1"]) as fx:
            out = fx(torch.randn(1, 3, 128, 128))
    finally:
        for h in handles:
            h.remove()
    assert set(out) == {"conv2", "conv1"}
    assert "features.3" in ran and "features.4" not in ran and "classifier.6" not in ran


def test_branching_graph_matches_full_forward(resnet18_random):
    m = resnet18_random.module
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        full = {}
        hs = [m.get_submodule(n).register_forward_hook(lambda mod, i, o, n=n: full.__setitem__(n, o.clone()))
              for n in ("layer2.1", "layer3")]
        m(x)
        for h in hs:
            h.remove()
        out = FeatureExtractor(m, ["layer3", "layer2.1"])(x)
    for name in full:
        assert torch.allclose(out[name], full[name], atol=1e-5)


def test_gradients_flow_and_aliases(alexnet_random):
    x = torch.randn(1, 3, 96, 96, requires_grad=True)
    with FeatureExtractor(alexnet_random, ["conv3"]) as fx:
        fx(x)["conv3"][0, 5].mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in alexnet_random.module.parameters())  # frozen


def test_unknown_layer_lists_names(alexnet_random):
    with pytest.raises(VisUsageError, match="conv4"):
        FeatureExtractor(alexnet_random, ["conv44"])


def test_hooks_removed(alexnet_random):
    fx = FeatureExtractor(alexnet_random, ["conv1"])
    fx.close()
    assert all(not m._forward_hooks for m in alexnet_random.module.modules())
