"""The forward passes a map needs, each stopping at what the target needs, none with weight gradients.

* :func:`first_pass` — the layer's activations (as a gradient leaf: the pass runs without gradients up
  to the layer), the target's scores and, for the gradient methods, their gradient with respect to the
  activations: one forward pass, one backward pass from the target to the layer only;
* :class:`Scorer` — target scores of other inputs (masked, perturbed), no gradients;
* :func:`ablated_scores` — the target's score with each unit of the layer set to zero (AblationCAM),
  batched: the layers before it run once per image, the copies are made at the layer;
* :func:`input_gradient` — the gradient of the scores with respect to the input under a ReLU rule
  (guided Grad-CAM).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

import torch

from ..errors import VisUsageError
from ..features.extractor import FeatureExtractor
from ..features.layers import layer_layout
from ..features.layout import Layout
from ..features.views import relu_rule
from ..models import LoadedModel
from .targets import Target, target_scores

__all__ = ["Capture", "Scorer", "ablated_scores", "channel_dim", "first_pass", "input_gradient"]


@dataclass
class Capture:
    """What the first pass gives: ``activations`` and ``gradients`` ``[N, K, h, w]`` (channels first,
    the class token dropped; gradients None for gradient-free methods), one score and target index
    per image."""

    activations: torch.Tensor
    gradients: torch.Tensor | None
    scores: torch.Tensor
    indices: torch.Tensor


def _layers(layer: str, target: Target) -> list[str]:
    return [layer] + ([target.layer] if target.kind == "unit" and target.layer and target.layer != layer else [])


def layouts_of(model: LoadedModel, names: list[str]) -> dict[str, Layout]:
    """The layout of each layer at the model's input size."""
    return {name: layer_layout(model, name) for name in names}


def first_pass(model: LoadedModel, x: torch.Tensor, layer: str, target: Target, gradients: bool,
               indices: torch.Tensor | None = None) -> Capture:
    """Activations of `layer` (canonical name) on the normalised batch `x`, the target's scores (of
    `indices` where given) and, with `gradients`, d(score)/d(activations); a layer after the target
    (no gradient reaches it from the target) is a usage error."""
    names = _layers(layer, target)
    layouts = layouts_of(model, names)
    with torch.enable_grad(), FeatureExtractor(model, names, stop_early=target.kind == "unit",
                                               leaves=[layer]) as fx:
        feats = fx(x)
        scores, indices = target_scores(target, feats, fx.output, layouts, indices)
        if not scores.requires_grad:
            raise VisUsageError(f"layer {layer!r} is not before the target {target}: no gradient reaches it from "
                                "the target; pick a `layer` that the target is computed from")
        grads = torch.autograd.grad(scores.sum(), feats[layer])[0] if gradients else None
    layout = layouts[layer]
    return Capture(layout.to_channels_first(feats[layer].detach()),
                   layout.to_channels_first(grads) if grads is not None else None,
                   scores.detach(), indices)


class Scorer:
    """Target scores of normalised batches, without gradients, the pass stopped at the target's
    layer (classes: the whole model). Use as a context manager (it holds hooks)."""

    def __init__(self, model: LoadedModel, target: Target):
        self.model = model
        self.target = target
        self.layouts = layouts_of(model, [target.layer]) if target.kind == "unit" and target.layer else {}
        self._fx = FeatureExtractor(model, [target.layer]) if self.layouts else None

    def __call__(self, x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """Scores ``[N]`` of the target `indices` ``[N]`` on `x`, without gradients."""
        with torch.no_grad():
            return self.scores(x, indices)

    def scores(self, x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """As calling it, in the caller's gradient mode."""
        if self._fx is not None:
            feats, output = self._fx(x), None
        else:
            feats, output = {}, self.model.module(x)
        return target_scores(self.target, feats, output, self.layouts, indices)[0]

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The model's logits ``[N, classes]`` on `x` (class targets)."""
        with torch.no_grad():
            return self.model.module(x)

    def close(self) -> None:
        if self._fx is not None:
            self._fx.close()

    def __enter__(self) -> "Scorer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def channel_dim(layout: Layout) -> int:
    """The dim of a batch ``[B, *shape]`` in `layout` that holds the units."""
    return {"CHW": 1, "HWC": 3, "NC": 2, "C": 1}[layout.kind]


@contextlib.contextmanager
def _ablating(module: torch.nn.Module, dim: int, units: list[int], expand: bool) -> Iterator[None]:
    """While inside, `module`'s output ``[1 or B, …]`` becomes B copies, copy j with unit ``units[j]``
    zeroed (with `expand`, a batch of one is expanded at the layer)."""
    def hook(_module, _inputs, output):
        tensor = output[0] if isinstance(output, (tuple, list)) else output
        shape = list(tensor.shape)
        shape[0] = len(units)
        copies = (tensor.expand(shape) if expand else tensor).clone()
        index = [slice(None)] * copies.dim()
        for j, unit in enumerate(units):
            index[0], index[dim] = j, unit
            copies[tuple(index)] = 0
        return (copies, *output[1:]) if isinstance(output, (tuple, list)) else copies
    handle = module.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def ablated_scores(model: LoadedModel, x: torch.Tensor, layer: str, target: Target, indices: torch.Tensor,
                   units: int, batch: int = 32) -> torch.Tensor:
    """``[N, units]``: the target's score on each image of `x` with unit k of `layer` zeroed at every
    position (and token), in chunks of `batch` copies. The layers before `layer` run once per chunk
    on the one image and the copies are made at the layer; a model whose later layers cannot take
    that (a branch from before the layer that does not broadcast) gets the image repeated instead."""
    module = model.submodule(layer)
    dim = channel_dim(layer_layout(model, layer))
    out = torch.empty(x.shape[0], units, device=x.device)
    expand = True
    for i in range(x.shape[0]):
        for start in range(0, units, batch):
            chunk = list(range(start, min(units, start + batch)))
            picked = indices[i:i + 1].expand(len(chunk))
            # the ablation hook must come before the scorer's, which then sees the ablated output
            for attempt in ((True, False) if expand else (False,)):
                try:
                    with _ablating(module, dim, chunk, attempt), Scorer(model, target) as scorer:
                        source = x[i:i + 1] if attempt else x[i:i + 1].expand(len(chunk), -1, -1, -1)
                        out[i, start:start + len(chunk)] = scorer(source, picked)
                    break
                except RuntimeError:
                    if not attempt:
                        raise
                    expand = False
    return out


def input_gradient(model: LoadedModel, x: torch.Tensor, target: Target, indices: torch.Tensor,
                   mode: str = "guided") -> torch.Tensor:
    """d(score)/d(input) ``[N, 3, H, W]`` of the normalised batch `x` with every ReLU's backward pass
    under `mode` (:func:`~vistoolbox.features.views.relu_rule`)."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad(), relu_rule(mode), Scorer(model, target) as scorer:
        return torch.autograd.grad(scorer.scores(x, indices).sum(), x)[0].detach()
