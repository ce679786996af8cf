"""Receptive-field geometry for any torch graph, traced op by op.

A forward pass runs under a :class:`~torch.overrides.TorchFunctionMode` that attaches a
:class:`Field` to every tensor it sees. Convolutions and poolings compose the classic recurrence
(effective kernel ``d·(k−1)+1``; ``size += (k_eff−1)·jump``; ``jump *= stride``;
``offset −= pad·jump``); shape-preserving ops (ReLU, BatchNorm, add, concat…) take the union of their
inputs' fields, so a branching graph gets the field that covers every path; 1-D/2-D outputs
(flatten, linear) see the whole image. Unit ``(y, x)`` of a layer covers input rows
``offset_h + y·stride_h … offset_h + y·stride_h + size_h − 1`` (likewise columns).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

__all__ = ["GLOBAL", "Box", "Field", "LayerGeometry", "crop_padded", "field_of", "inside_fraction", "trace_geometry", "unit_box"]

Pair = tuple[int, int]


@dataclass(frozen=True)
class Field:
    """Receptive field of one unit: `size`, `stride` (jump) and `offset` of unit (0, 0), as (h, w).

    ``is_global`` marks outputs without spatial dimensions (fc layers): they see the whole image.
    ``exact`` is False when an op changed geometry in a way the tracer does not model
    (e.g. interpolation); the numbers are then the last known ones.
    """

    size: Pair = (1, 1)
    stride: Pair = (1, 1)
    offset: Pair = (0, 0)
    is_global: bool = False
    exact: bool = True

    def union(self, other: "Field") -> "Field":
        """The smallest field covering both (used where branches meet)."""
        if self.is_global or other.is_global:
            return GLOBAL
        start = tuple(min(a, b) for a, b in zip(self.offset, other.offset))
        end = tuple(max(a + s, b + t) for a, s, b, t in zip(self.offset, self.size, other.offset, other.size))
        stride = tuple(max(a, b) for a, b in zip(self.stride, other.stride))
        return Field(size=(end[0] - start[0], end[1] - start[1]), stride=stride, offset=start,  # type: ignore[arg-type]
                     exact=self.exact and other.exact and self.stride == other.stride)

    def after(self, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair = (1, 1)) -> "Field":
        """The field after a sliding-window op (conv or pool) with the given parameters."""
        if self.is_global:
            return self
        size = tuple(s + (d * (k - 1)) * j for s, k, d, j in zip(self.size, kernel, dilation, self.stride))
        offset = tuple(o - p * j for o, p, j in zip(self.offset, padding, self.stride))
        jump = tuple(j * s for j, s in zip(self.stride, stride))
        return Field(size=size, stride=jump, offset=offset, exact=self.exact)  # type: ignore[arg-type]


GLOBAL = Field(is_global=True)


@dataclass(frozen=True)
class Box:
    """A unit's input box on an image of size (H, W): the clipped crop and the padding that
    restores the full receptive-field size. Coordinates are half-open ``[top, bottom)``."""

    top: int
    left: int
    bottom: int
    right: int
    pad_top: int
    pad_left: int
    pad_bottom: int
    pad_right: int

    @property
    def full_size(self) -> Pair:
        """(h, w) of the padded patch: the receptive-field size."""
        return (self.bottom - self.top + self.pad_top + self.pad_bottom,
                self.right - self.left + self.pad_left + self.pad_right)


def unit_box(field: Field, y: int, x: int, image_size: Pair) -> Box:
    """Input box of unit (y, x) for a field on an image of `image_size` (h, w), clipped, plus padding.

    Global fields (fc layers) and y = x = −1 return the whole image.
    """
    height, width = image_size
    if field.is_global or y < 0 or x < 0:
        return Box(0, 0, height, width, 0, 0, 0, 0)
    r0 = field.offset[0] + y * field.stride[0]
    c0 = field.offset[1] + x * field.stride[1]
    r1, c1 = r0 + field.size[0], c0 + field.size[1]
    top, left, bottom, right = max(r0, 0), max(c0, 0), min(r1, height), min(c1, width)
    return Box(top, left, max(bottom, top), max(right, left),
               top - r0, left - c0, r1 - max(bottom, top), c1 - max(right, left))


def inside_fraction(field: Field, shape: Pair, image_size: Pair) -> np.ndarray:
    """``[H, W]`` float64: the fraction of each unit's receptive-field area that lies inside an image of
    `image_size` (h, w), for a layer whose output map is `shape` (H, W). The field is a rectangle, so
    the fraction is the product of the row and column fractions; 1 means no padding reaches the unit."""
    if field.is_global:
        return np.ones(shape)

    def axis(offset: int, stride: int, size: int, count: int, length: int) -> np.ndarray:
        start = offset + stride * np.arange(count)
        return np.clip(np.minimum(start + size, length) - np.maximum(start, 0), 0, None) / size

    return np.outer(axis(field.offset[0], field.stride[0], field.size[0], shape[0], image_size[0]),
                    axis(field.offset[1], field.stride[1], field.size[1], shape[1], image_size[1]))


def crop_padded(image: np.ndarray | torch.Tensor, box: Box, fill) -> np.ndarray | torch.Tensor:
    """Cut `box` out of an ``[C, H, W]`` image and pad it to the box's full size with `fill` (per channel)."""
    channels = image.shape[0]
    height, width = box.full_size
    inner = image[:, box.top:box.bottom, box.left:box.right]
    if isinstance(image, torch.Tensor):
        out = torch.as_tensor(fill, dtype=image.dtype).view(channels, 1, 1).repeat(1, height, width)
    else:
        out = np.broadcast_to(np.asarray(fill, dtype=image.dtype).reshape(channels, 1, 1),
                              (channels, height, width)).copy()
    out[:, box.pad_top:box.pad_top + inner.shape[1], box.pad_left:box.pad_left + inner.shape[2]] = inner
    return out


def field_of(entry: dict) -> Field:
    """The receptive field stored in a layer-table row or manifest layer entry (``rf_size``,
    ``rf_stride``, ``rf_offset``; null sizes mean a global field, as fc layers have)."""
    if entry.get("rf_size") is None:
        return GLOBAL
    return Field(tuple(entry["rf_size"]), tuple(entry["rf_stride"]), tuple(entry["rf_offset"]))  # type: ignore[arg-type]


def _pair(value: Any) -> Pair:
    if isinstance(value, int):
        return (value, value)
    value = tuple(value)
    return (int(value[0]), int(value[-1])) if value else (1, 1)


def _arg(args: Sequence[Any], kwargs: dict, index: int, name: str, default: Any = None) -> Any:
    if name in kwargs:
        return kwargs[name]
    return args[index] if len(args) > index else default


def _tensors(obj: Any) -> Iterable[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            yield from _tensors(item)
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from _tensors(item)


class _FieldTracer(TorchFunctionMode):
    """Attaches a Field to every tensor produced during a forward pass (keyed by id; tensors are
    kept alive so ids stay unique). Each tensor also carries the positions of its (h, w) dims, so
    channels-last detours (ConvNeXt's ``permute`` → LayerNorm → Linear → ``permute``) keep
    their geometry."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[int, Field] = {}
        self.hw_dims: dict[int, tuple[int, int]] = {}
        self.alive: list[torch.Tensor] = []

    def set(self, tensor: torch.Tensor, field: Field, hw: tuple[int, int] | None = None) -> None:
        self.fields[id(tensor)] = field
        self.hw_dims[id(tensor)] = hw or (tensor.dim() - 2, tensor.dim() - 1)
        self.alive.append(tensor)

    def get(self, tensor: torch.Tensor) -> Field | None:
        return self.fields.get(id(tensor))

    def spatial(self, tensor: torch.Tensor, hw: tuple[int, int] | None = None) -> tuple[int, ...]:
        """Sizes of the tensor's (h, w) dims."""
        h, w = hw or self.hw_dims.get(id(tensor), (tensor.dim() - 2, tensor.dim() - 1))
        return (tensor.shape[h], tensor.shape[w]) if tensor.dim() >= 3 else ()

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: D401
        kwargs = kwargs or {}
        inputs = [t for t in _tensors((args, kwargs)) if self.get(t) is not None]
        out = func(*args, **kwargs)
        if not inputs:
            return out
        results = [t for t in _tensors(out)]
        if not results:
            return out
        name = getattr(func, "__name__", "").lstrip("_")
        src, result = inputs[0], results[0]
        if name == "permute" and src.dim() >= 3:
            dims = args[1:] if len(args) > 2 or not isinstance(args[1], (list, tuple)) else args[1]
            dims = [int(d) % src.dim() for d in dims]
            h, w = self.hw_dims[id(src)]
            hw = (dims.index(h), dims.index(w))
        elif result.dim() == src.dim():
            hw = self.hw_dims[id(src)]
        else:
            hw = (result.dim() - 2, result.dim() - 1)
        field = self.get(src) if name == "permute" else self._rule(name, args, kwargs, inputs, result, hw)
        for res in results:
            self.set(res, field if res.dim() >= 3 else GLOBAL, hw if res.dim() == result.dim() else None)  # type: ignore[arg-type]
        return out

    def _rule(self, name: str, args, kwargs, inputs, result: torch.Tensor, hw: tuple[int, int]) -> Field:
        src = self.get(inputs[0])
        assert src is not None
        if result.dim() < 3:
            return GLOBAL
        if name in ("conv2d", "convolution") and len(args) >= 2 and isinstance(args[1], torch.Tensor):
            kernel = tuple(args[1].shape[-2:])
            pad = _arg(args, kwargs, 4, "padding", 0)
            dil = _pair(_arg(args, kwargs, 5, "dilation", 1))
            if isinstance(pad, str):  # 'same' keeps size: pad = d·(k−1)//2 on the leading side
                pad = tuple(d * (k - 1) // 2 for k, d in zip(kernel, dil)) if pad == "same" else (0, 0)
            return src.after(kernel, _pair(_arg(args, kwargs, 3, "stride", 1)), _pair(pad), dil)  # type: ignore[arg-type]
        if name in ("max_pool2d", "max_pool2d_with_indices", "avg_pool2d"):
            kernel = _pair(_arg(args, kwargs, 1, "kernel_size"))
            stride = _arg(args, kwargs, 2, "stride", None)
            stride = kernel if stride is None or (isinstance(stride, (list, tuple)) and not stride) else _pair(stride)
            pad = _pair(_arg(args, kwargs, 3, "padding", 0))
            dil = _pair(_arg(args, kwargs, 4, "dilation", 1)) if name.startswith("max") else (1, 1)
            return src.after(kernel, stride, pad, dil)
        if name in ("adaptive_avg_pool2d", "adaptive_max_pool2d"):
            h_in, w_in = inputs[0].shape[-2:]
            h_out, w_out = result.shape[-2:]
            if (h_in, w_in) == (h_out, w_out):
                return src
            # bins of an adaptive pool: exact when the sizes divide, else the largest bin
            kernel = (-(-h_in // h_out), -(-w_in // w_out))
            stride = (h_in // h_out, w_in // w_out)
            field = src.after(kernel, stride, (0, 0))
            exact = h_in % h_out == 0 and w_in % w_out == 0
            return Field(field.size, field.stride, field.offset, exact=field.exact and exact)
        if name == "pad":
            pads = list(_arg(args, kwargs, 1, "pad", ()))
            left, top = (pads + [0, 0, 0, 0])[0], (pads + [0, 0, 0, 0])[2]
            return Field(src.size, src.stride, (src.offset[0] - top * src.stride[0],
                                                 src.offset[1] - left * src.stride[1]), exact=src.exact)
        spatial = self.spatial(result, hw)
        same = [self.get(t) for t in inputs if t.dim() >= 3 and self.spatial(t) == spatial]
        if same:
            field = same[0]
            for other in same[1:]:
                field = field.union(other)  # type: ignore[union-attr]
            return field  # type: ignore[return-value]
        if all(f.is_global for f in (self.get(t) for t in inputs)):  # type: ignore[union-attr]
            return GLOBAL
        return Field(src.size, src.stride, src.offset, exact=False)


@dataclass(frozen=True)
class LayerGeometry:
    """Output shape (without batch) and receptive field of one named module."""

    shape: tuple[int, ...] | None
    field: Field | None


def trace_geometry(module: nn.Module, input_size: Pair | int, names: Iterable[str] | None = None,
                   channels: int = 3) -> dict[str, LayerGeometry]:
    """Output shape and receptive field of every named module (or those in `names`) of `module`.

    Runs one forward pass of a zero image of `input_size` on the module's device, without gradients.
    """
    size = _pair(input_size)
    wanted = set(names) if names is not None else None
    tracer = _FieldTracer()
    found: dict[str, LayerGeometry] = {}
    handles = []

    def hook_for(name: str):
        def hook(_mod, _inp, out):
            tensors = list(_tensors(out))
            if not tensors:
                found[name] = LayerGeometry(None, None)
                return
            first = tensors[0]
            found[name] = LayerGeometry(tuple(first.shape[1:]), tracer.get(first))
        return hook

    for name, sub in module.named_modules():
        if name and (wanted is None or name in wanted):
            handles.append(sub.register_forward_hook(hook_for(name)))
    try:
        param = next(module.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        image = torch.zeros(1, channels, *size, device=device)
        with torch.no_grad(), tracer:
            tracer.set(image, Field())
            module(image)
    finally:
        for handle in handles:
            handle.remove()
    return found
