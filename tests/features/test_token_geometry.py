"""Geometry through token mixing: layouts of channels-last and token outputs, and receptive fields
through attention, windows, gates and reshapes — each checked against the gradient field on small
synthetic models built the way ViT, Swin and squeeze-excitation nets build theirs."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.swin_transformer import SwinTransformerBlock

from vistoolbox import load_model
from vistoolbox.errors import VisUsageError
from vistoolbox.features.field import GLOBAL, Field, union_all
from vistoolbox.features.layers import layer_layout, layer_table
from vistoolbox.features.layout import Layout, decide_layout, parse_layout
from vistoolbox.features.positions import Grid, Tokens, reshape_axes
from vistoolbox.features.receptive import trace_geometry
from vistoolbox.models import LoadedModel, Preprocessing

from gradient_field import check_layers


class TinyViT(nn.Module):
    """Patch embedding 8 px → flatten → class token → encoder blocks (nn.MultiheadAttention), the
    way torchvision's VisionTransformer does it."""

    def __init__(self, dim: int = 16) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, dim, 8, stride=8)
        self.class_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.tokens = nn.Identity()
        self.norm = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, 2, batch_first=True)
        self.block = nn.Identity()
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x):
        x = self.embed(x).flatten(2).transpose(1, 2)
        x = self.tokens(torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1))
        y = self.norm(x)
        x = self.block(x + self.attn(y, y, y, need_weights=False)[0])
        return self.mlp(x)[:, 0]


class TimmStyleAttention(nn.Module):
    """qkv → reshape → permute → unbind → scaled_dot_product_attention, then a hand-written
    matmul + softmax attention; tokens without a class token."""

    def __init__(self, dim: int = 8) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, dim, 4, stride=4)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.sdpa = nn.Identity()
        self.manual = nn.Identity()

    def forward(self, x):
        x = self.embed(x).flatten(2).transpose(1, 2)                      # [B, N, C]
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, 2, c // 2).permute(2, 0, 3, 1, 4).unbind(0)
        x = self.sdpa(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, c))
        return self.manual((x @ x.transpose(-2, -1)).softmax(-1) @ x)


class Gated(nn.Module):
    """A squeeze-excitation gate: every position is scaled by a function of the global average."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(6, 6, 1), nn.Sigmoid())
        self.out = nn.Identity()

    def forward(self, x):
        x = self.conv(x)
        return self.out(x * self.gate(x))


class Windows(nn.Module):
    """torchvision's Swin block (window 4, shifted by 2) on a channels-last 4-px token map."""

    def __init__(self, dim: int = 8) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, dim, 4, stride=4)
        self.plain = SwinTransformerBlock(dim, 2, [4, 4], [0, 0])
        self.shifted = SwinTransformerBlock(dim, 2, [4, 4], [2, 2])

    def forward(self, x):
        return self.shifted(self.plain(self.embed(x).permute(0, 2, 3, 1)))


class Scrambled(nn.Module):
    """Ops the tracer cannot follow: an upsampling, a roll over rows, then windows cut by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.up = nn.Upsample(scale_factor=2, mode="bilinear")
        self.rolled = nn.Identity()
        self.cut = nn.Identity()

    def forward(self, x):
        self.up(self.conv(x))
        x = self.rolled(torch.roll(self.conv(x), 3, dims=2))
        b, c, h, w = x.shape
        return self.cut(x.view(b, c, h // 4, 4, w // 4, 4).permute(0, 2, 4, 1, 3, 5).reshape(b, -1, c * 16))


def as_loaded(module: nn.Module, size: int, **layouts: str) -> LoadedModel:
    return LoadedModel(name="test", weights="random", module=module.eval(), preprocessing=Preprocessing(input_size=size),
                       layouts=dict(layouts))


def test_vit_tokens_layout_and_global_attention():
    torch.manual_seed(0)
    net = TinyViT()
    geometry = trace_geometry(net, 32)
    assert decide_layout(geometry["embed"].shape, geometry["embed"].axes) == Layout("CHW")
    assert geometry["tokens"].axes == Tokens(0, 4, 4, prefix=1)
    assert geometry["tokens"].field == Field((8, 8), (8, 8), (0, 0))  # before attention: one patch per token
    assert geometry["block"].field == GLOBAL                            # after: the whole image
    rows = {r.name: r for r in layer_table(as_loaded(net, 32))}
    assert (rows["block"].layout, rows["block"].shape, rows["block"].units, rows["block"].rf) == \
        ("NC:1+4x4", [17, 16], 16, "global")
    assert (rows["tokens"].rf, rows["tokens"].rf_size) == ("exact", [8, 8])
    assert (rows["mlp"].layout, rows["mlp.0"].units) == ("NC:1+4x4", 32)
    assert check_layers(net, ["embed", "tokens", "norm", "attn", "block", "mlp"], (32, 32)) == {
        "embed": "exact", "tokens": "exact", "norm": "exact", "attn": "global", "block": "global", "mlp": "global"}


def test_sdpa_and_matmul_softmax_attention_are_global():
    torch.manual_seed(0)
    net = TimmStyleAttention()
    geometry = trace_geometry(net, 32)
    assert geometry["sdpa"].axes == Tokens(0, 8, 8) and geometry["manual"].axes == Tokens(0, 8, 8)
    assert check_layers(net, ["embed", "qkv", "sdpa", "manual"], (32, 32)) == {
        "embed": "exact", "qkv": "exact", "sdpa": "global", "manual": "global"}


def test_squeeze_excitation_gate_is_global():
    torch.manual_seed(0)
    assert check_layers(Gated(), ["conv", "gate", "out"], (24, 24)) == {"conv": "exact", "gate": "global",
                                                                          "out": "global"}


def test_swin_windows_bounded_never_smaller():
    torch.manual_seed(0)
    net = Windows()
    geometry = trace_geometry(net, 64)  # 16x16 tokens of 4 px, windows of 4 tokens
    assert decide_layout(geometry["plain"].shape, geometry["plain"].axes) == Layout("HWC")
    # any token's window lies within 3 tokens of it: 7 tokens of 4 px around it
    assert geometry["plain"].field == Field((28, 28), (4, 4), (-12, -12), tight=False)
    assert geometry["shifted"].field == Field((52, 52), (4, 4), (-24, -24), tight=False)
    kinds = check_layers(net, ["embed", "plain", "plain.attn", "shifted"], (64, 64))
    assert kinds == {"embed": "exact", "plain": "bound", "plain.attn": "bound", "shifted": "bound"}
    # a map no larger than one window: attention over all of it, the whole image
    assert trace_geometry(net, 16)["plain"].field == GLOBAL


def test_unfollowed_ops_are_unknown_and_layouts_overridable():
    net = Scrambled()
    model = as_loaded(net, 16)
    rows = {r.name: r for r in layer_table(model)}
    assert (rows["conv"].rf, rows["conv"].rf_size) == ("exact", [3, 3])
    assert (rows["rolled"].layout, rows["rolled"].rf, rows["rolled"].rf_size) == ("CHW", "unknown", None)
    assert (rows["up"].layout, rows["up"].shape, rows["up"].rf) == ("CHW", [4, 32, 32], "unknown")
    assert (rows["cut"].layout, rows["cut"].units, rows["cut"].rf) == (None, None, "unknown")
    with pytest.raises(VisUsageError, match="cannot tell.*layouts"):
        layer_layout(model, "cut")
    model = as_loaded(net, 16, cut="NC:4x4")
    row = next(r for r in layer_table(model) if r.name == "cut")
    assert (row.layout, row.units, row.rf, row.rf_size) == ("NC:4x4", 64, "unknown", None)
    with pytest.raises(VisUsageError, match="does not fit"):
        layer_table(as_loaded(net, 16, cut="NC:1+4x4"))


def test_reused_module_described_by_its_first_call(resnet18_random):
    """``layer1.0.relu`` runs twice per block; the extractor captures the first call, so does the table."""
    geometry = trace_geometry(resnet18_random.module, 64)
    assert geometry["layer1.0.relu"].field == geometry["layer1.0.bn1"].field


def test_layout_strings_and_channels_first():
    for text in ("CHW", "HWC", "C", "NC:1+14x14", "NC:7x7"):
        assert str(parse_layout(text)) == text
    for bad in ("WHC", "NC:14", "NC:0x3", "NC:1+"):
        with pytest.raises(ValueError):
            parse_layout(bad)
    x = torch.arange(2 * 5 * 3, dtype=torch.float32).view(2, 5, 3)  # 1 class token + 2x2 grid, 3 channels
    out = parse_layout("NC:1+2x2").to_channels_first(x)
    assert out.shape == (2, 3, 2, 2) and torch.equal(out[:, :, 1, 0], x[:, 3, :])
    hwc = torch.randn(2, 4, 5, 3)
    assert torch.equal(Layout("HWC").to_channels_first(hwc)[:, 2, 3, 1], hwc[:, 3, 1, 2])
    assert Layout("HWC").channels([4, 5, 3]) == 3 and Layout("NC", 1, (2, 2)).positions([5, 3]) == (2, 2)


def test_reshape_follows_positions():
    grid = Grid(2, 3)
    assert reshape_axes(grid, (1, 8, 4, 4), (1, 8, 16)).axes == Tokens(2, 4, 4)            # flatten(2)
    assert reshape_axes(Tokens(1, 4, 4), (1, 16, 8), (1, 4, 4, 8)).axes == Grid(1, 2)     # unflatten
    assert reshape_axes(grid, (1, 8, 4, 4), (1, 8, 1, 4, 4)).axes == Grid(3, 4)          # unsqueeze
    assert reshape_axes(grid, (1, 8, 1, 1), (1, 8)).kind == "folded"                    # classifier flatten
    assert reshape_axes(grid, (1, 8, 4, 4), (1, 128)).kind == "folded"
    assert reshape_axes(grid, (1, 8, 4, 4), (1, 8, 2, 2, 2, 2)).kind == "lost"           # windows


def test_union_of_all_positions():
    field = Field((8, 8), (8, 8), (0, 0))
    assert union_all(field, (4, 4), (32, 32)) == GLOBAL
    assert union_all(field, (4, 4), (36, 36)) == Field((32, 32), (0, 0), (0, 0))  # 4 px never seen
    assert union_all(Field((8, 8), (8, 8), (0, 0), tight=False), (4, 4), (32, 32)).kind == "bound"


def test_vit_at_a_small_input_size():
    model = load_model("vit_b_16", "random", input_size=64)
    assert model.fixed_size == 64
    rows = {r.name: r for r in layer_table(model)}
    assert (rows["encoder.layers.encoder_layer_3"].layout, rows["encoder.layers.encoder_layer_3"].units) == \
        ("NC:1+4x4", 768)
