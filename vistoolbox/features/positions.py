"""Where a tensor keeps its image positions, and how shape operations move them.

A tensor traced from the image holds its positions either as a 2-D :class:`Grid` over two dims
(``[B, C, H, W]``: dims 2, 3; channels-last ``[B, H, W, C]``: dims 1, 2) or as a :class:`Tokens`
axis: one dim listing ``prefix`` extra tokens (a class token) and then a ``rows × cols`` grid in
row-major order (``[B, 1 + N, C]``). The functions here answer, for one shape operation, where
those dims went — or that they were scattered in a way nobody can follow (``None``).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Sequence

import torch

from .field import Field

__all__ = ["Grid", "Tokens", "Axes", "Geo", "Reshaped", "reshape_axes", "permute_axes", "shift_axes",
           "IndexPlan", "index_plan", "normalize_dims"]


@dataclass(frozen=True)
class Grid:
    """Positions on a 2-D grid: rows along dim `h`, columns along dim `w`."""

    h: int
    w: int

    def dims(self) -> tuple[int, ...]:
        return (self.h, self.w)

    def extent(self, shape: Sequence[int]) -> tuple[int, int]:
        """(rows, cols) of the grid in a tensor of `shape`."""
        return (int(shape[self.h]), int(shape[self.w]))

    def moved(self, dims: Sequence[int]) -> "Grid":
        return Grid(dims[0], dims[1])


@dataclass(frozen=True)
class Tokens:
    """Positions as tokens along dim `n`: `prefix` extra tokens, then a rows × cols grid, row-major."""

    n: int
    rows: int
    cols: int
    prefix: int = 0

    def dims(self) -> tuple[int, ...]:
        return (self.n,)

    def extent(self, shape: Sequence[int] | None = None) -> tuple[int, int]:
        return (self.rows, self.cols)

    def moved(self, dims: Sequence[int]) -> "Tokens":
        return replace(self, n=dims[0])

    def fits(self, shape: Sequence[int]) -> bool:
        """Whether dim `n` of `shape` holds exactly the prefix plus the grid."""
        return self.n < len(shape) and int(shape[self.n]) == self.prefix + self.rows * self.cols


Axes = Grid | Tokens


@dataclass(frozen=True)
class Geo:
    """Geometry of one traced tensor: the field of each of its positions, where the positions are
    (None: it has none, e.g. a flattened fc input — then `field` covers every element), and for a
    token axis the field of its prefix tokens (None: they do not depend on the image)."""

    field: Field
    axes: Axes | None = None
    prefix: Field | None = None


def normalize_dims(dims: Any, ndim: int) -> list[int] | None:
    """An int / sequence of dims → sorted non-negative dims; None stays None (all dims)."""
    if dims is None:
        return None
    if isinstance(dims, int):
        dims = [dims]
    return sorted({int(d) % ndim for d in dims}) if ndim else []


def permute_axes(axes: Axes, order: Sequence[int]) -> Axes:
    """Axes after ``permute(order)`` (output dim i is input dim ``order[i]``)."""
    order = [int(d) % len(order) for d in order]
    return axes.moved([order.index(d) for d in axes.dims()])


def shift_axes(axes: Axes, offset: int) -> Axes:
    """Axes after `offset` dims were added (or removed, negative) in front."""
    return axes.moved([d + offset for d in axes.dims()])


# --------------------------------------------------------------------------- reshapes
@dataclass(frozen=True)
class Reshaped:
    """What a reshape did to the positions: ``kind`` is ``carried`` (same dims, maybe moved),
    ``tokens`` (a grid flattened into one dim), ``grid`` (a token dim unflattened into rows and
    cols), ``folded`` (positions merged into features or dropped: no positions are left) or
    ``lost`` (positions scattered over several dims, e.g. cut into windows)."""

    kind: str
    axes: Axes | None = None


def _groups(old: Sequence[int], new: Sequence[int]) -> list[tuple[list[int], list[int]]]:
    """Pair up runs of dims with equal products (the blocks a reshape keeps together)."""
    groups: list[tuple[list[int], list[int]]] = []
    i = j = 0
    while i < len(old) or j < len(new):
        gi: list[int] = []
        gj: list[int] = []
        pi = pj = 1
        if i < len(old):
            gi.append(i)
            pi *= old[i]
            i += 1
        if j < len(new):
            gj.append(j)
            pj *= new[j]
            j += 1
        while pi != pj:
            if pi < pj and i < len(old):
                gi.append(i)
                pi *= old[i]
                i += 1
            elif pj < pi and j < len(new):
                gj.append(j)
                pj *= new[j]
                j += 1
            else:
                break
        groups.append((gi, gj))
    return groups


def reshape_axes(axes: Axes, old: Sequence[int], new: Sequence[int]) -> Reshaped:
    """Follow `axes` through a reshape from shape `old` to shape `new`."""
    old, new = [int(s) for s in old], [int(s) for s in new]
    if old == new:
        return Reshaped("carried", axes)
    if 0 in old:
        return Reshaped("lost")
    groups = _groups(old, new)
    where = {d: g for g, (gi, _) in enumerate(groups) for d in gi}

    def big(dims: list[int], shape: list[int]) -> list[int]:
        return [d for d in dims if shape[d] != 1]

    def carried(dim: int) -> int | None:
        gi, gj = groups[where[dim]]
        if big(gi, old) == [dim] and len(big(gj, new)) == 1 and new[big(gj, new)[0]] == old[dim]:
            return big(gj, new)[0]
        if old[dim] == 1 and gi == [dim] and len(gj) == 1 and new[gj[0]] == 1:
            return gj[0]
        return None

    dims = axes.dims()
    moved = [carried(d) for d in dims]
    if all(m is not None for m in moved):
        return Reshaped("carried", axes.moved(moved))  # type: ignore[arg-type]
    if isinstance(axes, Grid):
        gi, gj = groups[where[axes.h]]
        if where[axes.h] == where[axes.w] and big(gi, old) == [axes.h, axes.w] and axes.w == axes.h + 1 \
                and len(big(gj, new)) == 1:
            return Reshaped("tokens", Tokens(big(gj, new)[0], old[axes.h], old[axes.w]))
    else:
        gi, gj = groups[where[axes.n]]
        out = big(gj, new)
        if axes.prefix == 0 and big(gi, old) == [axes.n] and len(out) == 2 and out[1] == out[0] + 1 \
                and (new[out[0]], new[out[1]]) == (axes.rows, axes.cols):
            return Reshaped("grid", Grid(out[0], out[1]))
    if all(len(big(groups[where[d]][1], new)) == 0 for d in dims):
        return Reshaped("folded")  # the position dims were size 1 and are gone
    if all(len(big(groups[where[d]][1], new)) == 1 and len(big(groups[where[d]][0], old)) > 1
           and any(e not in dims for e in big(groups[where[d]][0], old)) for d in dims):
        return Reshaped("folded")  # merged with feature dims into one (flatten for a classifier)
    return Reshaped("lost")


# --------------------------------------------------------------------------- indexing
@dataclass(frozen=True)
class IndexPlan:
    """What ``x[index]`` keeps of each input dim: ``out[d]`` is its output dim (None: removed by
    an int), ``slices[d]`` its normalised ``(start, stop, step)`` when sliced, ``ints[d]`` the
    position picked by an int. ``ok`` is False for advanced (tensor/list/bool) indexing."""

    out: dict[int, int | None]
    slices: dict[int, tuple[int, int, int]]
    ints: dict[int, int]
    ok: bool = True


def index_plan(index: Any, shape: Sequence[int]) -> IndexPlan:
    """Plan of ``x[index]`` for a tensor of `shape` (basic indexing only)."""
    items = list(index) if isinstance(index, tuple) else [index]
    if any(isinstance(i, (torch.Tensor, list)) or (not isinstance(i, (int, slice)) and i is not None
                                                   and i is not Ellipsis) for i in items):
        return IndexPlan({}, {}, {}, ok=False)
    consumed = sum(1 for i in items if i is not None and i is not Ellipsis)
    if Ellipsis in items:
        at = items.index(Ellipsis)
        items = items[:at] + [slice(None)] * (len(shape) - consumed) + items[at + 1:]
    else:
        items = items + [slice(None)] * (len(shape) - consumed)
    out: dict[int, int | None] = {}
    slices: dict[int, tuple[int, int, int]] = {}
    ints: dict[int, int] = {}
    dim = new = 0
    for item in items:
        if item is None:
            new += 1
            continue
        if isinstance(item, slice):
            slices[dim] = item.indices(int(shape[dim]))
            out[dim] = new
            new += 1
        else:
            ints[dim] = int(item) % max(int(shape[dim]), 1)
            out[dim] = None
        dim += 1
    return IndexPlan(out, slices, ints)
