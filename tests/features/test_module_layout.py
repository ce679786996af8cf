"""Where the geometry tracer loses a layer's positions, what the module is still gives its layout."""
from __future__ import annotations

import pytest
from torch import nn

from vistoolbox import layer_layout, layer_table, load_model
from vistoolbox.features.layout import module_layout


def test_module_types_give_channels_first_only_when_the_shape_agrees():
    conv = nn.Conv2d(3, 8, 3)
    assert str(module_layout(conv, [8, 5, 5])) == "CHW"
    assert module_layout(conv, [5, 5, 8]) is None          # 8 channels said, 5 seen first: not CHW
    assert module_layout(conv, [8, 25]) is None            # not a map
    assert str(module_layout(nn.Sequential(conv, nn.BatchNorm2d(8), nn.GELU()), [8, 5, 5])) == "CHW"
    assert module_layout(nn.Sequential(nn.Linear(3, 8), nn.GELU()), [5, 5, 8]) is None
    assert module_layout(nn.LayerNorm(8), [5, 5, 8]) is None


@pytest.mark.slow
def test_maxvit_convs_and_norms_are_readable():
    """maxvit_t partitions its maps into windows; every conv, BatchNorm and conv block still has its
    layout, with as many units as the module has channels."""
    model = load_model("maxvit_t", "random", quiet=True)
    rows = {r.name: r for r in layer_table(model)}
    kinds = (nn.Conv2d, nn.BatchNorm2d)
    checked = 0
    for name, module in model.module.named_modules():
        if isinstance(module, kinds) and rows[name].shape:
            channels = getattr(module, "out_channels", getattr(module, "num_features", None))
            assert rows[name].layout == "CHW" and rows[name].units == channels, name
            checked += 1
    assert checked >= 90
    blocks = [r for r in rows.values() if r.type == "Conv2dNormActivation"]
    assert blocks and all(r.layout == "CHW" for r in blocks)
    deep = next(n for n, m in model.module.named_modules() if isinstance(m, nn.Conv2d) and rows[n].rf == "unknown")
    assert layer_layout(model, deep).channels(rows[deep].shape) == rows[deep].units
