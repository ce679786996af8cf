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
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from ..errors import VisUsageError
from ..models import LoadedModel
from .extractor import FeatureExtractor

__all__ = ["MODES", "batch_views", "parse_modes", "unit_views"]

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


def batch_views(model: LoadedModel, images: torch.Tensor, layer: str, units: Sequence[int],
                ys: Sequence[int], xs: Sequence[int], modes: Sequence[str] = MODES) -> dict[str, torch.Tensor]:
    """Views for a batch: image i (0–1 RGB ``[N, 3, H, W]``) for unit ``units[i]`` at ``(ys[i], xs[i])``.

    Returns ``{mode: [N, 3, H, W]}``, gradients with respect to the normalised model input. One
    forward pass for the whole batch and one backward pass per mode (the ReLU rule is read when
    the backward pass runs; samples are independent in eval mode). fc layers ignore y and x;
    (y, x) is a position of the layer's grid whatever its layout (tokens: the class token excluded).
    Models without ReLUs (GELU transformers) give the same plain gradient in all three modes.
    """
    parse_modes(modes, "modes")
    count = images.shape[0]
    if not len(units) == len(ys) == len(xs) == count:
        raise ValueError("need one unit, y and x per image")
    x = model.preprocessing.normalize(images.to(model.device).float()).detach().requires_grad_(True)
    out: dict[str, torch.Tensor] = {}
    if not modes:
        return out
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
        ``{mode: [3, H, W]}`` signed maps (gradients w.r.t. the normalised input); show them with
        :func:`vistoolbox.images.normalize_visual`.

    Example:
        >>> views = unit_views(model, image, "conv5_3", 12, 7, 7, ["guided"])
        >>> save_png(normalize_visual(views["guided"]), "guided.png")
    """
    batch = image if image.dim() == 4 else image.unsqueeze(0)
    if batch.shape[0] != 1:
        raise ValueError("unit_views takes one image; use batch_views for several")
    return {mode: view[0] for mode, view in batch_views(model, batch, layer, [unit], [y], [x], modes).items()}
