"""What a map explains: a class logit, a unit's channel mean, or the top of the model.

``class:N`` is logit N before the softmax; ``unit:LAYER:N`` is the mean of unit N of LAYER over its
positions (the value of an fc unit), so models without a classifier head get maps too; ``top`` is
the top-1 class where the model has logits, else the strongest unit (largest channel mean) of the
deepest layer with positions — chosen per image.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import VisUsageError
from ..features.layers import layer_table
from ..features.layout import Layout
from ..models import LoadedModel

__all__ = ["Target", "deepest_layer", "parse_target", "target_scores"]


@dataclass(frozen=True)
class Target:
    """``kind`` is ``class``, ``unit`` or ``top``; `layer` (canonical) and `index` for units, `index`
    for classes."""

    kind: str
    index: int | None = None
    layer: str | None = None

    def __str__(self) -> str:
        if self.kind == "class":
            return f"class:{self.index}" if self.index is not None else "top"
        if self.kind == "unit":
            return f"unit:{self.layer}:{self.index}"
        return "top"


def parse_target(text: str | None) -> Target:
    """``class:N``, ``unit:LAYER:N`` or ``top`` (None: top) → :class:`Target`; anything else is a usage
    error naming `target`."""
    text = (text or "top").strip()
    if text == "top":
        return Target("top")
    kind, _, rest = text.partition(":")
    try:
        if kind == "class":
            return Target("class", _index(rest))
        if kind == "unit":
            layer, _, index = rest.rpartition(":")
            if layer:
                return Target("unit", _index(index), layer)
    except ValueError:
        pass
    raise VisUsageError(f"cannot read `target` {text!r}; use class:N, unit:LAYER:N (e.g. unit:conv5_3:12) or top")


def _index(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value


def deepest_layer(model: LoadedModel) -> str:
    """The last leaf layer (in definition order) whose units have positions: where ``top`` picks its unit
    on a model without logits."""
    leaves = {name for name, module in model.module.named_modules() if name and not list(module.children())}
    rows = [row for row in layer_table(model) if row.name in leaves and row.layout and row.layout != "C"
            and row.shape is not None]
    if not rows:
        raise VisUsageError(f"model {model.name!r} has no layer with positions for `target` top; give unit:LAYER:N")
    return rows[-1].name


def target_scores(target: Target, feats: dict[str, torch.Tensor], output: object, layouts: dict[str, Layout],
                  indices: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One score per image (``[N]``) and the index each used (``[N]``): the logit of the class, the
    channel mean of the unit (`feats` holds the target layer's output as the module returned it,
    `layouts` its layout). `indices` fixes them (the masked passes of ScoreCAM, AblationCAM and the
    metrics reuse the first pass's choice); else ``top`` picks the argmax."""
    if target.kind == "unit":
        assert target.layer is not None
        values = layouts[target.layer].to_channels_first(feats[target.layer])
        values = values.flatten(2).mean(2) if values.dim() > 2 else values
    else:
        if not isinstance(output, torch.Tensor) or output.dim() != 2:
            raise VisUsageError("`target` class:N needs a model whose output is logits [N, classes]; "
                                "use unit:LAYER:N or top")
        values = output
    if indices is None:
        indices = (values.argmax(1) if target.index is None else
                   torch.full((values.shape[0],), target.index, dtype=torch.long, device=values.device))
    if int(indices.max()) >= values.shape[1]:
        what = "classes" if target.kind != "unit" else f"units in layer {target.layer!r}"
        raise VisUsageError(f"`target` {target} is out of range: the model has {values.shape[1]} {what} "
                            f"(0..{values.shape[1] - 1})")
    return values[torch.arange(values.shape[0], device=values.device), indices.to(values.device)], indices

