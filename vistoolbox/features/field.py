"""Receptive fields as affine boxes: unit (y, x) covers input rows ``offset + y·stride`` …
``+ size − 1`` (columns likewise).

A :class:`Field` is one of four kinds (:attr:`Field.kind`):

* ``exact`` — the box is the unit's field (the bounding box of the input pixels it depends on);
* ``bound`` — the box contains the field and may be larger (e.g. Swin's windows: a token sees its
  window, wherever the window falls, so the box spans ``2·window − 1`` tokens around it);
* ``global`` — the unit sees the whole image (fc layers, global attention, squeeze-excitation gates);
* ``unknown`` — an operation the tracer cannot follow; nothing is claimed.

Stride 0 is a box shared by every unit (the union over all positions of a map that does not cover
the image). Unions take the extent of the grid (positions ``0 … n−1`` per axis) so that boxes of
different strides get the smallest affine box that covers both at every position.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
import torch

Pair = tuple[int, int]

__all__ = ["Field", "GLOBAL", "UNKNOWN", "Box", "crop_padded", "inside_fraction", "unit_box", "union_all"]


@dataclass(frozen=True)
class Field:
    """Receptive field of the units of a map: `size`, `stride` (jump) and `offset` of unit (0, 0),
    as (h, w); see the module doc for `is_global`, `exact` (False: unknown) and `tight` (False: a bound)."""

    size: Pair = (1, 1)
    stride: Pair = (1, 1)
    offset: Pair = (0, 0)
    is_global: bool = False
    exact: bool = True
    tight: bool = True

    @property
    def kind(self) -> str:
        """``exact``, ``bound``, ``global`` or ``unknown``."""
        if not self.exact:
            return "unknown"
        if self.is_global:
            return "global"
        return "exact" if self.tight else "bound"

    def after(self, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair = (1, 1), tight: bool = True) -> "Field":
        """The field after a sliding-window op (conv or pool) with the given parameters; `tight`
        False when the window is only a bound of what each output reads."""
        if self.is_global or not self.exact:
            return self
        size = tuple(s + (d * (k - 1)) * j for s, k, d, j in zip(self.size, kernel, dilation, self.stride))
        offset = tuple(o - p * j for o, p, j in zip(self.offset, padding, self.stride))
        jump = tuple(j * s for j, s in zip(self.stride, stride))
        return Field(size=size, stride=jump, offset=offset, tight=self.tight and tight)  # type: ignore[arg-type]

    def union(self, other: "Field", extent: Pair = (1, 1), image: Pair | None = None) -> "Field":
        """The smallest field covering both at every position of a rows × cols = `extent` grid (a
        shared box, stride 0, is compared with the other inside the `image` (h, w) when given)."""
        if self.is_global and self.exact or other.is_global and other.exact:
            return GLOBAL
        if not (self.exact and other.exact):
            return UNKNOWN
        if self.is_global or other.is_global:  # pragma: no cover - GLOBAL is always exact
            return GLOBAL
        axes = [_union_axis((self.offset[a], self.stride[a], self.size[a]),
                            (other.offset[a], other.stride[a], other.size[a]), max(int(extent[a]), 1),
                            image[a] if image is not None and 0 in (self.stride[a], other.stride[a]) else None)
                for a in (0, 1)]
        kinds = {k for _, k in axes}
        if kinds == {"a"}:
            return self
        if kinds == {"b"}:
            return other
        tight = self.tight and other.tight and "bound" not in kinds
        (oh, sh, zh), _ = axes[0]
        (ow, sw, zw), _ = axes[1]
        return Field(size=(zh, zw), stride=(sh, sw), offset=(oh, ow), tight=tight)


def _union_axis(a: tuple[int, int, int], b: tuple[int, int, int], n: int,
                clip: int | None = None) -> tuple[tuple[int, int, int], str]:
    """Union along one axis of two affine intervals ``(offset, stride, size)`` over positions
    ``0 … n−1``: ``a``/``b`` when one contains the other (inside ``[0, clip)`` when given), ``box``
    for an exact same-stride union, else the smallest covering affine interval with either stride
    (``bound``)."""
    ends = (0, n - 1)

    def lo(f, y):
        start = f[0] + y * f[1]
        return max(start, 0) if clip is not None else start

    def hi(f, y):
        end = f[0] + y * f[1] + f[2]
        return min(end, clip) if clip is not None else end

    a_holds_b = all(lo(a, y) <= lo(b, y) and hi(a, y) >= hi(b, y) for y in ends)
    b_holds_a = all(lo(b, y) <= lo(a, y) and hi(b, y) >= hi(a, y) for y in ends)
    if a_holds_b and not (b_holds_a and b[1] < a[1]):  # equal: the simpler (smaller stride) one
        return a, "a"
    if b_holds_a:
        return b, "b"
    best: tuple[int, int, int] | None = None
    for stride in sorted({a[1], b[1]}):
        start = min(min(lo(a, y), lo(b, y)) - y * stride for y in ends)
        end = max(max(hi(a, y), hi(b, y)) - y * stride for y in ends)
        if best is None or end - start < best[2]:
            best = (start, stride, end - start)
    assert best is not None
    return best, "box" if a[1] == b[1] else "bound"


GLOBAL = Field(is_global=True)
UNKNOWN = Field(exact=False)


def union_all(field: Field, extent: Pair, image: Pair, extra: Iterable[Field | None] = ()) -> Field:
    """The field of something that reads every position of a map (attention, a global pool):
    one box (stride 0) around all positions' fields and the `extra` ones — ``GLOBAL`` when it
    covers the whole `image` (h, w)."""
    if not field.exact:
        return UNKNOWN
    if field.is_global:
        return GLOBAL
    start = tuple(o + min(0, (n - 1) * s) for o, s, n in zip(field.offset, field.stride, extent))
    end = tuple(o + max(0, (n - 1) * s) + z for o, s, n, z in zip(field.offset, field.stride, extent, field.size))
    box = Field(size=(end[0] - start[0], end[1] - start[1]), stride=(0, 0), offset=start,  # type: ignore[arg-type]
                tight=field.tight)
    for other in extra:
        if other is not None:
            box = box.union(other, image=image)
    return settle(box, image)


def settle(field: Field, image: Pair) -> Field:
    """A shared box (stride 0) clipped to the `image` (one box for every unit: padding would
    mean nothing); ``GLOBAL`` when it is tight and covers the whole image."""
    if not field.exact or field.is_global or field.stride != (0, 0):
        return field
    start = tuple(max(o, 0) for o in field.offset)
    end = tuple(min(o + z, n) for o, z, n in zip(field.offset, field.size, image))
    if field.tight and start == (0, 0) and end == tuple(image):
        return GLOBAL
    return Field(size=(end[0] - start[0], end[1] - start[1]), stride=(0, 0), offset=start,  # type: ignore[arg-type]
                 tight=field.tight)


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

    Global and unknown fields and y = x = −1 return the whole image.
    """
    height, width = image_size
    if field.is_global or not field.exact or y < 0 or x < 0:
        return Box(0, 0, height, width, 0, 0, 0, 0)
    r0 = field.offset[0] + y * field.stride[0]
    c0 = field.offset[1] + x * field.stride[1]
    r1, c1 = r0 + field.size[0], c0 + field.size[1]
    top, left, bottom, right = max(r0, 0), max(c0, 0), min(r1, height), min(c1, width)
    return Box(top, left, max(bottom, top), max(right, left),
               top - r0, left - c0, r1 - max(bottom, top), c1 - max(right, left))


def inside_fraction(field: Field, shape: Pair, image_size: Pair) -> np.ndarray:
    """``[H, W]`` float64: the fraction of each unit's receptive-field area that lies inside an image of
    `image_size` (h, w), for a layer whose positions form an (H, W) = `shape` grid. The field is a
    rectangle, so the fraction is the product of the row and column fractions; 1 means no padding
    reaches the unit. Global and unknown fields give 1 everywhere (nothing is claimed)."""
    if field.is_global or not field.exact:
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
