"""The empirical receptive field, the reference every traced field is checked against.

A unit's empirical field is the bounding box of the non-zero input gradient of its value (summed
over channels) in a float64 copy of the model whose every path passes gradient: constant positive
weights, average instead of max pooling, identity norms (a norm would cancel a constant signal),
saturation-free gates (``Softsign`` for sigmoids: a saturated sigmoid has an exactly zero
gradient), zero relative-position biases. Gradients below 1e-30 of the largest count as zero:
Swin masks attention across its shifted windows with logits of −100, and e^−100 ≈ 4e-44 is such a
"zero". The geometry of the copy is the model's.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from vistoolbox.features.layout import Layout, decide_layout
from vistoolbox.features.receptive import Field, trace_geometry, unit_box

ZERO = 1e-30


def positive_copy(module: nn.Module) -> nn.Module:
    """Float64 copy with the same geometry in which every path passes gradient (see the module doc)."""
    net = copy.deepcopy(module).double()
    for sub in list(net.modules()):
        for name, child in list(sub.named_children()):
            if isinstance(child, nn.MaxPool2d):
                setattr(sub, name, nn.AvgPool2d(child.kernel_size, child.stride, child.padding,
                                                ceil_mode=child.ceil_mode))
            elif isinstance(child, (nn.LayerNorm, nn.GroupNorm)) or type(child).__name__ == "LayerNorm2d":
                setattr(sub, name, nn.Identity())
            elif isinstance(child, (nn.Sigmoid, nn.Hardsigmoid)):
                setattr(sub, name, nn.Softsign())
            elif isinstance(child, nn.Hardswish):
                setattr(sub, name, nn.SiLU())
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.constant_(m.weight, 1.0 / m.weight[0].numel())
            if m.bias is not None:
                nn.init.constant_(m.bias, 0.01)
        elif isinstance(m, nn.BatchNorm2d):
            m.running_mean.zero_(), m.running_var.fill_(1), m.weight.data.fill_(1), m.bias.data.zero_()
        elif isinstance(m, nn.MultiheadAttention) and m.in_proj_weight is not None:
            nn.init.constant_(m.in_proj_weight, 1.0 / m.embed_dim)
        if isinstance(getattr(m, "layer_scale", None), torch.Tensor):
            m.layer_scale.data.fill_(1.0)
    for name, param in net.named_parameters():
        if "relative_position_bias_table" in name:
            param.data.zero_()
        elif name.endswith(("pos_embedding", "class_token")):
            param.data.fill_(0.01)
    return net.eval()


class _Stop(Exception):
    pass


def empirical_box(net: nn.Module, layer: str, size: tuple[int, int], y: int, x: int,
                  layout: Layout | None = None) -> tuple[int, int, int, int] | None:
    """Bounding box (top, left, bottom, right), half-open, of the input gradient of unit (y, x) of
    `layer` (all channels; `layout` says where they are, default ``CHW``); None when the layer
    does not depend on the image at all."""
    out = {}

    def hook(_m, _i, o):
        out["v"] = o[0] if isinstance(o, (tuple, list)) else o
        raise _Stop  # nothing past the layer is needed

    handle = net.get_submodule(layer).register_forward_hook(hook)
    image = torch.ones(1, 3, *size, dtype=torch.float64, requires_grad=True)
    try:
        net(image)
    except _Stop:
        pass
    finally:
        handle.remove()
    value = (layout or Layout("CHW")).to_channels_first(out["v"])
    picked = value[0, :, y, x] if value.dim() == 4 else value[0]
    if not picked.requires_grad:
        return None
    picked.sum().backward()
    grad = image.grad[0].abs().sum(0)
    nz = (grad > grad.max() * ZERO).nonzero()
    if len(nz) == 0:
        return None
    return (nz[:, 0].min().item(), nz[:, 1].min().item(), nz[:, 0].max().item() + 1, nz[:, 1].max().item() + 1)


def reach(net: nn.Module, size: tuple[int, int]) -> tuple[int, int]:
    """(bottom, right) of the pixels the whole network reads at all: strided valid convolutions may
    drop the last rows and columns, and no unit sees those."""
    image = torch.ones(1, 3, *size, dtype=torch.float64, requires_grad=True)
    out = net(image)
    (out[0] if isinstance(out, (tuple, list)) else out).sum().backward()
    nz = (image.grad[0].abs().sum(0) > 0).nonzero()
    return (nz[:, 0].max().item() + 1, nz[:, 1].max().item() + 1)


def check_unit(field: Field, y: int, x: int, size: tuple[int, int], seen: tuple[int, int, int, int],
               far: tuple[int, int] | None = None) -> None:
    """Assert the traced `field` of unit (y, x) against its empirical box `seen`.

    ``exact``: equal inside the image; where the traced box is clipped, the first pixel inside may
    fall between dilated taps and past the far edge a later stride may drop the only units that see
    the last pixels — there the empirical field may only be smaller. ``bound``: the empirical box
    lies inside. ``global``: the empirical box starts at (0, 0) and reaches every pixel the network
    reads at all (`far`, default the image's corner).
    """
    kind = field.kind
    if kind == "global":
        far = far or size
        assert seen[:2] == (0, 0) and seen[2] >= far[0] and seen[3] >= far[1], (y, x, seen, far)
        return
    if kind == "unknown":
        return
    box = unit_box(field, y, x, size)
    want = (box.top, box.left, box.bottom, box.right)
    if kind == "bound":
        assert seen[0] >= want[0] and seen[1] >= want[1] and seen[2] <= want[2] and seen[3] <= want[3], \
            (y, x, seen, want)
        return
    for got, edge, clipped, sign in zip(seen, want, (box.pad_top, box.pad_left, box.pad_bottom, box.pad_right),
                                        (1, 1, -1, -1)):
        assert got == edge if not clipped else (got - edge) * sign >= 0, (y, x, seen, box)
    assert box.full_size == field.size


def check_layers(model: nn.Module, layers: list[str], size: tuple[int, int]) -> dict[str, str]:
    """Check the traced field of three units (centre, first, last) of each layer against the
    gradient field; returns each layer's field kind."""
    geometry = trace_geometry(model, size)
    net = positive_copy(model)
    far: tuple[int, int] | None = None
    kinds = {}
    for layer in layers:
        geo = geometry[layer]
        layout = decide_layout(geo.shape, geo.axes)
        assert layout is not None and layout.spatial, (layer, geo)
        kinds[layer] = geo.field.kind  # type: ignore[union-attr]
        if kinds[layer] == "global" and far is None:
            far = reach(net, size)
        rows, cols = layout.positions(geo.shape)  # type: ignore[arg-type, misc]
        for y, x in [(rows // 2, cols // 2), (0, 0), (rows - 1, cols - 1)]:
            seen = empirical_box(net, layer, size, y, x, layout)
            assert seen is not None, (layer, y, x)
            check_unit(geo.field, y, x, size, seen, far)  # type: ignore[arg-type]
    return kinds
