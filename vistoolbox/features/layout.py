"""The layout of a layer's output: where its channels (units) and its positions are.

Four layouts, written as short strings (``vis layers``, the run manifest, ``--layout`` overrides):

* ``CHW`` — channels-first map ``[C, H, W]`` (convolutions);
* ``HWC`` — channels-last map ``[H, W, C]`` (Swin and ConvNeXt blocks);
* ``NC:P+RxQ`` — tokens ``[N, C]``: ``P`` extra tokens first (a class token: ``1+``, omitted when 0),
  then an ``R × Q`` grid in row-major order, ``N = P + R·Q`` (ViT blocks: ``NC:1+14x14``);
* ``C`` — flat features ``[C]`` (fc layers).

Units are always the channels ``C``. :meth:`Layout.to_channels_first` turns a batch of outputs into
``[B, C, H, W]`` (the grid; extra tokens dropped) or ``[B, C]``, the one shape every consumer —
mining, objectives, views, Live maps — works on. The rule that picks a layer's layout is
:func:`decide_layout`.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Mapping, Sequence

import torch
from torch import nn

from .positions import Axes, Grid, Tokens

__all__ = ["Layout", "decide_layout", "module_layout", "parse_layout", "position_grid"]

_TOKENS = re.compile(r"^NC:(?:(\d+)\+)?(\d+)x(\d+)$")


@dataclass(frozen=True)
class Layout:
    """``kind`` is ``CHW``, ``HWC``, ``NC`` or ``C``; tokens have `prefix` extra tokens and a
    `grid` of (rows, cols)."""

    kind: str
    prefix: int = 0
    grid: tuple[int, int] | None = None

    def __str__(self) -> str:
        if self.kind != "NC":
            return self.kind
        rows, cols = self.grid or (0, 0)
        return f"NC:{f'{self.prefix}+' if self.prefix else ''}{rows}x{cols}"

    @property
    def spatial(self) -> bool:
        """Whether the units have positions (everything but ``C``)."""
        return self.kind != "C"

    def fits(self, shape: Sequence[int]) -> bool:
        """Whether an output of `shape` (without batch) can have this layout."""
        if self.kind == "C":
            return len(shape) == 1
        if self.kind == "NC":
            rows, cols = self.grid or (0, 0)
            return len(shape) == 2 and shape[0] == self.prefix + rows * cols
        return len(shape) == 3

    def channels(self, shape: Sequence[int]) -> int:
        """The number of units of an output of `shape` (without batch)."""
        return int(shape[{"CHW": 0, "HWC": 2, "NC": 1, "C": 0}[self.kind]])

    def positions(self, shape: Sequence[int]) -> tuple[int, int] | None:
        """(rows, cols) of the positions of an output of `shape`, None for ``C``."""
        if self.kind == "CHW":
            return (int(shape[1]), int(shape[2]))
        if self.kind == "HWC":
            return (int(shape[0]), int(shape[1]))
        if self.kind == "NC":
            return self.grid
        return None

    def to_channels_first(self, x: torch.Tensor) -> torch.Tensor:
        """A batch ``[B, *shape]`` in this layout → ``[B, C, H, W]`` (``[B, C]`` for ``C``).

        A token grid of another size than :attr:`grid` (a different input size) is read as the
        square grid its token count allows, or refused."""
        if self.kind == "CHW" or self.kind == "C":
            return x
        if self.kind == "HWC":
            return x.permute(0, 3, 1, 2)
        tokens = x[:, self.prefix:, :]
        rows, cols = self.grid or (0, 0)
        count = tokens.shape[1]
        if rows * cols != count:
            side = math.isqrt(count)
            if side * side != count or (rows and rows != cols):
                raise ValueError(f"{count} tokens do not fit layout {self}")
            rows = cols = side
        return tokens.transpose(1, 2).reshape(x.shape[0], x.shape[2], rows, cols)


def parse_layout(text: str) -> Layout:
    """``"CHW"``, ``"HWC"``, ``"C"``, ``"NC:1+14x14"`` or ``"NC:7x7"`` → :class:`Layout`;
    ValueError otherwise."""
    text = text.strip()
    if text in ("CHW", "HWC", "C"):
        return Layout(text)
    match = _TOKENS.match(text)
    if not match:
        raise ValueError(f"cannot read layout {text!r}; use CHW, HWC, C or NC:[P+]RxQ (e.g. NC:1+14x14)")
    prefix, rows, cols = int(match.group(1) or 0), int(match.group(2)), int(match.group(3))
    if rows < 1 or cols < 1:
        raise ValueError(f"layout {text!r} needs a grid of at least 1x1")
    return Layout("NC", prefix, (rows, cols))


def position_grid(info: Mapping) -> tuple[int, int] | None:
    """(rows, cols) of a layer's positions from its layer-table row or run-manifest entry (``shape``
    and ``layout``; entries made before layouts were recorded are channels-first), None for fc
    layers and layouts that do not fit the shape."""
    shape = info.get("shape") or []
    try:
        layout = parse_layout(info.get("layout") or ("CHW" if len(shape) == 3 else "C"))
    except ValueError:
        return None
    return layout.positions(shape) if layout.fits(shape) else None


def decide_layout(shape: Sequence[int] | None, axes: Axes | None) -> Layout | None:
    """The rule: what the tracer knows about the output's positions (`axes`, dims without the batch)
    decides — a grid over dims (1, 2) of a 3-D output is ``CHW``, over (0, 1) ``HWC``; a token axis
    at dim 0 of a 2-D output is ``NC`` with its prefix and grid; a 1-D output without positions is
    ``C``. Anything else — positions scattered (cut into windows) or lost, an output that does not
    depend on the image — has no layout (None) until overridden: no guess from the shape."""
    if shape is None:
        return None
    shape = list(shape)
    if isinstance(axes, Grid) and len(shape) == 3:
        if axes.dims() == (1, 2):
            return Layout("CHW")
        if axes.dims() == (0, 1):
            return Layout("HWC")
        return None
    if isinstance(axes, Tokens) and len(shape) == 2 and axes.n == 0:
        return Layout("NC", axes.prefix, (axes.rows, axes.cols))
    if axes is None and len(shape) == 1:
        return Layout("C")
    return None


#: Modules whose output is channels-first by definition (torch's 2-D convs, norms and pools): the
#: layout when the tracer lost the positions upstream (window partitions, say) but the module says it.
CHANNELS_FIRST = (nn.Conv2d, nn.ConvTranspose2d, nn.BatchNorm2d, nn.InstanceNorm2d, nn.LocalResponseNorm,
                  nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Dropout2d)

#: Modules whose output has its features last by definition (a linear map, a layer norm, attention
#: over tokens): a 3-D output is ``HWC`` — its first two dims index positions (MaxViT's windows and
#: the tokens in them), whatever they mean on the image — and a 1-D one ``C``.
CHANNELS_LAST = (nn.Linear, nn.LayerNorm, nn.MultiheadAttention)

#: Modules that keep their input's layout (a Sequential's layout is that of the last child not among them).
ELEMENTWISE = (nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Hardswish, nn.Hardsigmoid, nn.LeakyReLU,
               nn.Dropout, nn.Identity)


def _channels_of(module: nn.Module) -> int | None:
    """How many channels `module` outputs, where the module says so (None: as many as come in)."""
    for attr in ("out_channels", "num_features", "out_features", "embed_dim"):
        if isinstance(getattr(module, attr, None), int):
            return getattr(module, attr)
    shape = getattr(module, "normalized_shape", None)
    return int(shape[-1]) if shape else None


def _window_partition(module: nn.Module) -> bool:
    """torchvision's MaxViT window partition: a map cut into ``[windows, tokens, C]``."""
    return type(module).__name__ == "WindowPartition" and type(module).__module__.startswith("torchvision.")


def module_layout(module: nn.Module, shape: Sequence[int] | None) -> Layout | None:
    """The layout a module's type gives its output, checked against the output's `shape` (no batch):
    a 3-D output of a 2-D conv, norm or pool is ``CHW``, of a linear map, layer norm or attention
    ``HWC`` (a 1-D one ``C``) — the module's channel count must match —, a window partition's is
    ``HWC``; a ``Sequential`` has that of its last child that is not elementwise; None for anything
    else (the tracer's rule, or where the tensor came from, decides)."""
    if shape is None or len(shape) not in (1, 3):
        return None
    if isinstance(module, nn.Sequential):
        last = [child for child in module if not isinstance(child, ELEMENTWISE)]
        return module_layout(last[-1], shape) if last else None
    channels = _channels_of(module)
    if isinstance(module, CHANNELS_FIRST) and len(shape) == 3:
        return Layout("CHW") if channels is None or channels == shape[0] else None
    if isinstance(module, CHANNELS_LAST) and channels == shape[-1]:
        return Layout("HWC") if len(shape) == 3 else Layout("C")
    if _window_partition(module) and len(shape) == 3:
        return Layout("HWC")
    return None
