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
that routes ``relu`` calls through a custom autograd function, so no module is modified.
"""
from __future__ import annotations

import contextlib
from typing import Sequence

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from .errors import VisUsageError
from .extractor import FeatureExtractor
from .models import LoadedModel

MODES = ("deconv", "backprop", "guided")


class _ReluBackwardRule(torch.autograd.Function):
    """ReLU forward; deconvnet or guided-backprop backward."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, mode: str) -> torch.Tensor:  # type: ignore[override]
        ctx.mode = mode
        ctx.save_for_backward(a)
        return a.clamp_min(0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (a,) = ctx.saved_tensors
        out = grad.clamp_min(0)
        if ctx.mode == "guided":
            out = out * (a > 0).to(out.dtype)
        return out, None


_RELUS = {F.relu, torch.relu, torch.Tensor.relu, torch.relu_, torch.Tensor.relu_}


class _ReluOverride(TorchFunctionMode):
    """Inside this mode every ``relu`` call uses :class:`_ReluBackwardRule` with `mode`."""

    def __init__(self, mode: str):
        super().__init__()
        self.mode = mode

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: D401
        if func in _RELUS:
            return _ReluBackwardRule.apply(args[0], self.mode)
        return func(*args, **(kwargs or {}))


def batch_views(model: LoadedModel, images: torch.Tensor, layer: str, units: Sequence[int],
                ys: Sequence[int], xs: Sequence[int], modes: Sequence[str] = MODES) -> dict[str, torch.Tensor]:
    """Views for a batch: image i (0–1 RGB ``[N, 3, H, W]``) for unit ``units[i]`` at ``(ys[i], xs[i])``.

    Returns ``{mode: [N, 3, H, W]}``, gradients with respect to the normalised model input. One
    forward and backward pass per mode for the whole batch (samples are independent in eval mode).
    fc layers ignore y and x.
    """
    bad = [m for m in modes if m not in MODES]
    if bad:
        raise VisUsageError(f"unknown view {bad[0]!r}; valid: {', '.join(MODES)}")
    count = images.shape[0]
    if not len(units) == len(ys) == len(xs) == count:
        raise ValueError("need one unit, y and x per image")
    x = model.preprocessing.normalize(images.to(model.device).float()).detach().requires_grad_(True)
    rows = torch.arange(count)
    out: dict[str, torch.Tensor] = {}
    with FeatureExtractor(model, [layer]) as fx:
        for mode in modes:
            rule = contextlib.nullcontext() if mode == "backprop" else _ReluOverride(mode)
            with torch.enable_grad(), rule:
                feats = fx(x)[layer]
            unit_index = torch.as_tensor(list(units))
            if feats.dim() == 4:
                picked = feats[rows, unit_index, torch.as_tensor(list(ys)), torch.as_tensor(list(xs))]
            else:
                picked = feats[rows, unit_index]
            (grad,) = torch.autograd.grad(picked.sum(), x)
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
