"""Where the geometry tracer loses a layer's positions, what the module is still gives its layout."""
from __future__ import annotations

import pytest
from torch import nn

from vistoolbox import layer_layout, layer_table, load_model
from vistoolbox.features.layout import module_layout


def test_module_types_give_their_layout_only_when_the_shape_agrees():
    conv = nn.Conv2d(3, 8, 3)
    assert str(module_layout(conv, [8, 5, 5])) == "CHW"
    assert module_layout(conv, [5, 5, 8]) is None          # 8 channels said, 5 seen first: not CHW
    assert module_layout(conv, [8, 25]) is None            # not a map
    assert str(module_layout(nn.Sequential(conv, nn.BatchNorm2d(8), nn.GELU()), [8, 5, 5])) == "CHW"
    # features last: a linear map, a layer norm, attention (3-D: HWC, 1-D: C), when the count agrees
    assert str(module_layout(nn.Sequential(nn.Linear(3, 8), nn.GELU()), [5, 5, 8])) == "HWC"
    assert str(module_layout(nn.LayerNorm(8), [5, 5, 8])) == "HWC"
    assert str(module_layout(nn.Linear(3, 8), [8])) == "C"
    assert module_layout(nn.Linear(3, 8), [8, 5, 5]) is None
    assert module_layout(nn.LayerNorm(8), [8, 5]) is None  # 2-D: tokens, the tracer's business
    assert module_layout(nn.GELU(), [5, 5, 8]) is None     # elementwise: where its input came from decides


class Windows(nn.Module):
    """Cuts a map into 2x2 windows and back around a channels-last MLP, as MaxViT does: the op-by-op
    tracer loses the positions inside; what each module is and where its tensor came from do not."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.mlp = nn.Sequential(nn.LayerNorm(4), nn.Linear(4, 6), nn.GELU(), nn.Linear(6, 4))
        self.act = nn.GELU()
        self.keep = nn.Identity()
        self.head = nn.Conv2d(4, 5, 1)

    def forward(self, x):
        x = self.conv(x)
        b, c, h, w = x.shape
        windows = x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 3, 5, 1).reshape(b, -1, 4, c)
        windows = self.keep(windows + self.act(self.mlp(windows)))
        x = windows.reshape(b, h // 2, w // 2, 2, 2, c).permute(0, 5, 1, 3, 2, 4).reshape(b, c, h, w)
        return self.head(x)


class Partitioned(nn.Module):
    """MaxViT's partition attention in small: window (or grid) partitions of `p`, a channels-last
    mixing inside, the map put back."""

    def __init__(self, kind: str, p: int = 2) -> None:
        super().__init__()
        self.partition_type, self.p = kind, p
        self.mix = nn.Linear(4, 4)

    def forward(self, x):
        b, c, h, w = x.shape
        p = self.p
        windows = x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1).reshape(b, -1, p * p, c)
        windows = windows + self.mix(windows).softmax(dim=-2)   # mixes the tokens of each window
        return windows.reshape(b, h // p, w // p, p, p, c).permute(0, 5, 1, 3, 2, 4).reshape(b, c, h, w)


@pytest.mark.parametrize("kind", ["window", "grid"])
def test_partition_attention_gets_the_field_of_its_windows(kind):
    from vistoolbox.models import LoadedModel, Preprocessing

    module = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), Partitioned(kind), nn.Conv2d(4, 4, 1)).eval()
    model = LoadedModel(name="partitioned", weights="random", module=module,
                        preprocessing=Preprocessing((0.5,) * 3, (0.5,) * 3, 8, 8))
    rows = {r.name: r for r in layer_table(model, 8)}
    assert rows["0"].rf_size == [3, 3]
    if kind == "window":  # a position's 2x2 window lies within 1 position of it: the conv's 3 + 2·1
        assert (rows["1"].layout, rows["1"].rf, rows["1"].rf_size) == ("CHW", "bound", [5, 5])
    else:                 # a grid partition reads positions spread over the whole map
        assert (rows["1"].layout, rows["1"].rf) == ("CHW", "global")
    assert rows["2"].layout == "CHW" and rows["2"].rf == rows["1"].rf


def test_lost_layers_take_the_layout_of_the_module_or_of_where_their_tensor_came_from():
    from vistoolbox.models import LoadedModel, Preprocessing

    module = Windows().eval()
    model = LoadedModel(name="windows", weights="random", module=module,
                        preprocessing=Preprocessing((0.5,) * 3, (0.5,) * 3, 8, 8))
    rows = {r.name: r for r in layer_table(model, 8)}
    assert rows["conv"].layout == "CHW" and rows["conv"].rf == "exact"
    for name, units in [("mlp", 4), ("mlp.0", 4), ("mlp.1", 6), ("mlp.2", 6), ("mlp.3", 4)]:
        assert (rows[name].layout, rows[name].units, rows[name].rf) == ("HWC", units, "unknown"), name
    assert (rows["act"].layout, rows["keep"].layout) == ("HWC", "HWC")  # elementwise; a residual sum's
    assert rows["head"].layout == "CHW" and rows["head"].units == 5


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
    ran = [r for r in rows.values() if r.shape is not None]
    assert all(r.layout is not None for r in ran), [r.name for r in ran if r.layout is None]
    # the partition rule gives every attention block a field (global: squeeze-excitation gates precede them)
    assert {r.rf for r in ran if r.type == "PartitionAttentionLayer"} == {"global"}
    windows = rows["blocks.1.layers.0.layers.window_attention.partition_op"]
    assert (windows.layout, windows.units, windows.shape) == ("HWC", 128, [16, 49, 128])
    deep = "blocks.3.layers.1.layers.MBconv.layers.conv_c"
    assert layer_layout(model, deep).channels(rows[deep].shape) == rows[deep].units == 512
