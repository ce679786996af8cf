"""What in the input drives one unit at one place: deconvnet, plain gradient and guided backprop.

All three are the gradient of the unit's value at (y, x) with respect to the model input; they
differ only in how the backward pass goes through each ReLU (``g`` = incoming gradient, ``a`` =
the ReLU's forward input):

* ``backprop`` (Simonyan et al. 2014): ``g · [a > 0]`` — the plain gradient.
* ``deconv`` (Zeiler & Fergus 2014): ``max(g, 0)`` — the deconvnet: max-pool switches and
  transposed convolutions as in the gradient, the ReLU applied to the signal going down.
* ``guided`` (Springenberg et al. 2015): ``max(g, 0) · [a > 0]`` — both masks.

The forward pass is the shared :class:`~vistoolbox.extractor.FeatureExtractor` (stopping at the
unit's layer); the ReLU rule is swapped in with a :class:`~torch.overrides.TorchFunctionMode`
that routes ``relu`` calls through a custom autograd function, so no module is modified. That
function reads its rule when the backward pass runs, so one forward pass serves all three views
(one backward pass each).

A unit depends only on the input pixels of its receptive field, so for a conv layer the passes run
on a *window* of the input (:func:`view_window`): the field, clipped at the image, widened to start on
a multiple of the layer's total stride so every layer's grid inside the window coincides with the
full image's. The window's own borders are then padding only where no path reaches the unit, and
where it meets the image's edge the network pads exactly as on the whole image: the unit's value and
its gradient are those of the full pass (zero outside the window), at a fraction of the cost.
:func:`view_patch` shows a view cut to the field with its contrast set over the field.
"""
from __future__ import annotations

import contextlib
import weakref
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from ..errors import VisUsageError
from ..models import LoadedModel
from .extractor import FeatureExtractor
from .layout import decide_layout
from .receptive import Box, Field, crop_padded, trace_geometry, unit_box

__all__ = ["MODES", "batch_views", "parse_modes", "relu_rule", "unit_view_patches", "unit_views", "view_patch", "view_window"]

#: The view modes, in display order.
MODES = ("deconv", "backprop", "guided")


def parse_modes(modes: str | Sequence[str] | None, param: str = "views") -> list[str]:
    """``"deconv,guided"`` or a list → the valid modes in display order; unknown names are a usage
    error naming `param`."""
    if not modes:
        return []
    items = [m.strip() for m in (modes.split(",") if isinstance(modes, str) else modes) if m.strip()]
    bad = [m for m in items if m not in MODES]
    if bad:
        raise VisUsageError(f"unknown view {bad[0]!r} in `{param}`; valid: {', '.join(MODES)}")
    return [m for m in MODES if m in items]


class _Rule:
    """The backward rule in force (mutable: one forward pass serves every mode's backward pass)."""

    def __init__(self, mode: str):
        self.mode = mode


class _ReluBackwardRule(torch.autograd.Function):
    """ReLU forward; the backward of ``rule.mode`` as it is when the backward pass runs."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, rule: _Rule) -> torch.Tensor:  # type: ignore[override]
        ctx.rule = rule
        ctx.save_for_backward(a)
        return a.clamp_min(0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (a,) = ctx.saved_tensors
        mode = ctx.rule.mode
        out = grad if mode == "backprop" else grad.clamp_min(0)
        if mode != "deconv":
            out = out * (a > 0).to(out.dtype)
        return out, None


_RELUS = {F.relu, torch.relu, torch.Tensor.relu, torch.relu_, torch.Tensor.relu_}


class _ReluOverride(TorchFunctionMode):
    """Inside this mode every ``relu`` call uses :class:`_ReluBackwardRule` with `rule`."""

    def __init__(self, rule: _Rule):
        super().__init__()
        self.rule = rule

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: D401
        if func in _RELUS:
            return _ReluBackwardRule.apply(args[0], self.rule)
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def relu_rule(mode: str) -> Iterator[None]:
    """Inside, every ``relu``'s backward pass follows `mode` (``deconv``, ``backprop`` or ``guided``):
    a gradient taken through the model is then that view (guided Grad-CAM takes ``guided``)."""
    parse_modes([mode], "mode")
    with _ReluOverride(_Rule(mode)):
        yield


def view_window(field: Field, y: int, x: int, image_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """``(top, bottom, left, right)`` of the input window that computes unit (y, x) exactly: it holds the
    unit's receptive field (clipped at the image) and starts on a multiple of the field's stride.

    Windows of one layer share one size, except where pushed against the image's far edge when the
    image size is not a multiple of the stride (they then end at the edge, so that padding stays)."""
    def axis(offset: int, stride: int, size: int, position: int, length: int) -> tuple[int, int]:
        span = -(-(offset % stride + size) // stride) * stride
        start = (offset + position * stride) // stride * stride
        if span >= length:
            return 0, length
        if start < 0:
            return 0, span
        if start + span > length:
            return (length - span) // stride * stride, length
        return start, start + span

    top, bottom = axis(field.offset[0], field.stride[0], field.size[0], y, image_size[0])
    left, right = axis(field.offset[1], field.stride[1], field.size[1], x, image_size[1])
    return top, bottom, left, right


_FIELDS: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()


def _field(model: LoadedModel, path: str, size: tuple[int, int]) -> Field | None:
    """The layer's receptive field at input `size` (traced once per model, layer and size), or None
    where views need the whole image: a window computes a unit exactly only when the unit reads a
    strided box of pixels through convolutions and pointwise ops. So: None for layers without a grid
    of positions (fc, token sequences), for fields that are not ``exact`` (attention, windowed
    attention and squeeze-excitation gates make them global or a bound; unknown ops), for one box
    shared by every position (stride 0: the positions were mixed), and for a layout override that
    disagrees with what was traced."""
    known = _FIELDS.setdefault(model.module, {})
    if (path, size) not in known:
        geo = trace_geometry(model.module, size, names=[path], channels=model.preprocessing.channels).get(path)
        traced = decide_layout(geo.shape, geo.axes) if geo is not None and geo.field is not None else None
        given = model.layouts.get(path)
        grid = traced is not None and traced.kind in ("CHW", "HWC") and (given is None or given == str(traced))
        field = geo.field if grid and geo is not None else None
        known[(path, size)] = field if field is not None and field.kind == "exact" and min(field.stride) > 0 else None
    return known[(path, size)]


def batch_views(model: LoadedModel, images: torch.Tensor, layer: str, units: Sequence[int],
                ys: Sequence[int], xs: Sequence[int], modes: Sequence[str] = MODES,
                windowed: bool = True) -> dict[str, torch.Tensor]:
    """Views for a batch: image i (0–1 RGB ``[N, 3, H, W]``) for unit ``units[i]`` at ``(ys[i], xs[i])``.

    Returns ``{mode: [N, 3, H, W]}``, gradients with respect to the normalised model input. One
    forward pass for the whole batch and one backward pass per mode (the ReLU rule is read when
    the backward pass runs; samples are independent in eval mode). fc layers ignore y and x;
    (y, x) is a position of the layer's grid whatever its layout (tokens: the class token excluded).
    Models without ReLUs (GELU transformers) give the same plain gradient in all three modes.
    With `windowed` (default), layers with an exact, strided field on a grid of positions run on
    :func:`view_window` windows only (batched by window size); the result equals the whole-image
    pass. Every other layer (tokens, token mixing, bound/global/unknown fields) takes the whole image.
    """
    parse_modes(modes, "modes")
    count = images.shape[0]
    if not len(units) == len(ys) == len(xs) == count:
        raise ValueError("need one unit, y and x per image")
    if not modes:
        return {}
    size = (int(images.shape[-2]), int(images.shape[-1]))
    field = _field(model, model.resolve(layer), size) if windowed else None
    if field is None:
        return _views(model, images, layer, units, ys, xs, modes)
    windows = [view_window(field, int(y), int(x), size) for y, x in zip(ys, xs)]
    out = {mode: torch.zeros(images.shape, device=model.device) for mode in modes}
    groups: dict[tuple[int, int], list[int]] = {}
    for i, (top, bottom, left, right) in enumerate(windows):
        groups.setdefault((bottom - top, right - left), []).append(i)
    for members in groups.values():
        crops = torch.stack([images[i, :, windows[i][0]:windows[i][1], windows[i][2]:windows[i][3]] for i in members])
        views = _views(model, crops, layer, [units[i] for i in members],
                       [int(ys[i]) - windows[i][0] // field.stride[0] for i in members],
                       [int(xs[i]) - windows[i][2] // field.stride[1] for i in members], modes)
        for mode, view in views.items():
            for j, i in enumerate(members):
                top, bottom, left, right = windows[i]
                out[mode][i, :, top:bottom, left:right] = view[j]
    return out


def _views(model: LoadedModel, images: torch.Tensor, layer: str, units: Sequence[int],
           ys: Sequence[int], xs: Sequence[int], modes: Sequence[str]) -> dict[str, torch.Tensor]:
    """The views on `images` as given: one forward pass, one backward pass per mode."""
    count = images.shape[0]
    x = model.preprocessing.normalize(images.to(model.device).float()).detach().requires_grad_(True)
    out: dict[str, torch.Tensor] = {}
    rule = _Rule(modes[0])
    with FeatureExtractor(model, [layer], channels_first=True) as fx:
        with torch.enable_grad(), _ReluOverride(rule):
            feats = fx(x)[layer]
        rows, unit_index = torch.arange(count), torch.as_tensor(list(units))
        if feats.dim() == 4:
            picked = feats[rows, unit_index, torch.as_tensor(list(ys)), torch.as_tensor(list(xs))]
        else:
            picked = feats[rows, unit_index]
        for i, mode in enumerate(modes):
            rule.mode = mode
            (grad,) = torch.autograd.grad(picked.sum(), x, retain_graph=i < len(modes) - 1)
            out[mode] = grad.detach()
    return out


EIGHT_BIT_MARGIN = 255 / 253  # the percentile pixel lands at 0.5 ± 253/510: one 8-bit level inside the range


def view_patch(view: torch.Tensor, box: Box, percentile: float = 99.5) -> torch.Tensor:
    """A view ``[3, H, W]`` as a picture of the unit's field: cut to `box` (grey where the field leaves
    the image), centred at 0.5 and scaled so that at most ``100 − percentile`` % of the field's pixels
    clip, also once stored as 8-bit (the percentile of the pixels' largest channel magnitude inside the
    field, rounded up to a pixel's value, maps to level 253.5 of 255: that pixel rounds to 253 or 254,
    never to 0 or 255). Returns 0–1 ``[3, h, w]`` of the field's full size."""
    inner = view[:, box.top:box.bottom, box.left:box.right].detach().float().cpu()
    if inner.numel():
        magnitude = inner.abs().amax(0).flatten()
        scale = float(torch.quantile(magnitude, percentile / 100, interpolation="higher")) * EIGHT_BIT_MARGIN
        inner = (inner / (2 * max(scale, 1e-30)) + 0.5).clamp(0, 1)
    full = Box(0, 0, inner.shape[1], inner.shape[2], box.pad_top, box.pad_left, box.pad_bottom, box.pad_right)
    return crop_padded(inner, full, [0.5, 0.5, 0.5])


def unit_views(model: LoadedModel, image: torch.Tensor, layer: str, unit: int, y: int = -1, x: int = -1,
               modes: Sequence[str] = MODES) -> dict[str, torch.Tensor]:
    """Deconv / backprop / guided views of `unit` of `layer` at (y, x) for one image.

    Args:
        model: a :class:`LoadedModel`.
        image: 0–1 RGB, ``[3, H, W]`` or ``[1, 3, H, W]`` (already resized/cropped).
        layer: layer name or alias; `unit` its channel; (y, x) the position in its output
            (ignored for fc layers).
        modes: any of ``deconv``, ``backprop``, ``guided``.

    Returns:
        ``{mode: [3, H, W]}`` signed maps (gradients w.r.t. the normalised input, zero outside the
        unit's field); show one with :func:`view_patch` (cut to the field) or
        :func:`vistoolbox.images.normalize_visual` (the whole image).

    Example:
        >>> views = unit_views(model, image, "conv5_3", 12, 7, 7, ["guided"])
        >>> box = unit_box(field, 7, 7, (224, 224))
        >>> save_png(view_patch(views["guided"], box), "guided.png")
    """
    batch = image if image.dim() == 4 else image.unsqueeze(0)
    if batch.shape[0] != 1:
        raise ValueError("unit_views takes one image; use batch_views for several")
    return {mode: view[0] for mode, view in batch_views(model, batch, layer, [unit], [y], [x], modes).items()}


def unit_view_patches(model: LoadedModel, image: torch.Tensor, layer: str, unit: int, y: int = -1, x: int = -1,
                      modes: Sequence[str] = MODES) -> dict[str, torch.Tensor]:
    """:func:`unit_views` as pictures of the unit's field (:func:`view_patch`): ``{mode: [3, h, w]}`` in
    0–1, the field's full size (the whole image for fc layers), contrast set over the field."""
    batch = image if image.dim() == 4 else image.unsqueeze(0)
    size = (int(batch.shape[-2]), int(batch.shape[-1]))
    field = _field(model, model.resolve(layer), size)
    box = unit_box(field, y, x, size) if field is not None else Box(0, 0, size[0], size[1], 0, 0, 0, 0)
    return {mode: view_patch(view, box) for mode, view in unit_views(model, batch, layer, unit, y, x, modes).items()}
