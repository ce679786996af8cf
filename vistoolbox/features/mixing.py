"""Rules for ops that read along the position dims: every output position gets the union of all
the positions it reads (``GLOBAL`` when that covers the image).

* attention: ``scaled_dot_product_attention``, ``multi_head_attention_forward``, and
  ``matmul``/``einsum`` across tokens (``q @ kᵀ``, then ``softmax`` over keys, then ``@ v``);
* softmax and reductions over position dims, ``layer_norm`` / ``group_norm`` statistics over
  positions, ``linear`` over a position dim (MLP-Mixer's token mixing);
* window attention, a module rule (:func:`window_rule`): any module with ``window_size`` and
  ``shift_size`` (torchvision's and timm's Swin) whose internals cut the map into windows the
  op-by-op trace cannot follow: a token's window, shifted or not, lies within ``window − 1`` tokens
  of it (a bound), or covers the whole map;
* partition attention, a module rule (:func:`partition_rule`): MaxViT's block attention
  (``partition_type`` ``window``, partitions of ``p × p`` aligned windows: a bound as above) and grid
  attention (``grid``: every token reads a sparse grid spread over the whole map: the whole map).
"""
from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import nn

from .field import UNKNOWN, Field, union_all
from .opargs import arg, as_list, pair, tensors_in
from .positions import Axes, Geo, Grid, Tokens, normalize_dims, shift_axes

__all__ = ["ALONG", "MATMULS", "REDUCTIONS", "along", "attention", "matmul", "has_module_rule", "normed", "partition_rule", "window_rule"]

REDUCTIONS = {  # name → position of the dim argument (default: all dims)
    "mean": 1, "sum": 1, "amax": 1, "amin": 1, "prod": 1, "std": 1, "var": 1, "logsumexp": 1,
    "nansum": 1, "nanmean": 1, "argmax": 1, "argmin": 1, "max": 1, "min": 1, "median": 1,
    "count_nonzero": 1, "any": 1, "all": 1, "std_mean": 1, "var_mean": 1, "norm": 2, "vector_norm": 2,
}
ALONG = {  # name → (position of the dim argument, default dim) for ops that mix along one dim
    "softmax": (1, None), "log_softmax": (1, None), "softmin": (1, None), "cumsum": (1, None),
    "cumprod": (1, None), "logcumsumexp": (1, None), "cummax": (1, None), "cummin": (1, None),
    "sort": (1, -1), "argsort": (1, -1), "topk": (2, -1), "normalize": (2, 1), "local_response_norm": (None, 1),
}
MATMULS = frozenset("matmul mm bmm".split())


class GeometryTracer(Protocol):
    """What these rules need of :class:`~.tracer.GeometryTracer`."""

    image: tuple[int, int]

    def get(self, tensor: Any) -> Geo | None: ...

    def set(self, tensor: torch.Tensor, geo: Geo) -> None: ...

    def everything(self, tensor: torch.Tensor, geo: Geo) -> Field: ...


def along(tracer: GeometryTracer, name: str, args: tuple, kwargs: dict, src: torch.Tensor, geo: Geo,
          results: list[torch.Tensor]) -> list[Geo | None] | None:
    """Reductions and softmax-like ops: pointwise unless their dims touch positions; over every
    position dim, each output reads all positions; over some of them only, unknown."""
    nd = src.dim()
    if name in REDUCTIONS:
        raw = arg(args, kwargs, REDUCTIONS[name], "dim", None)
        dims = normalize_dims(None if isinstance(raw, bool) else raw, nd)  # std(x, False): unbiased, not a dim
        if dims is None:
            dims = list(range(nd))
        keep = bool(arg(args, kwargs, REDUCTIONS[name] + 1, "keepdim", False))
        if name in ("norm",):
            keep = bool(arg(args, kwargs, 3, "keepdim", False))
    else:
        index, default = ALONG[name]
        dim = arg(args, kwargs, index, "dim", default)
        if dim is None:
            return None  # implicit dim choice (legacy softmax): do not guess
        dims, keep = [int(dim) % nd], True
    if geo.axes is None:
        return [Geo(geo.field) for _ in results]
    hit = [d for d in geo.axes.dims() if d in dims]
    if not hit:
        if keep:
            return [Geo(geo.field, geo.axes, geo.prefix) for _ in results]
        axes = geo.axes.moved([d - sum(1 for r in dims if r < d) for d in geo.axes.dims()])
        return [Geo(geo.field, axes, geo.prefix) for _ in results]
    if name in ("cumsum", "cumprod", "logcumsumexp", "cummax", "cummin", "sort", "argsort", "topk",
                "local_response_norm") or len(hit) != len(geo.axes.dims()):
        return None  # reorders or partly mixes positions
    field = tracer.everything(src, geo)
    tokens_prefix = isinstance(geo.axes, Tokens) and geo.axes.prefix
    if keep and name not in REDUCTIONS:  # softmax-like: every position reads all of them
        return [Geo(field, geo.axes, field if tokens_prefix else None) for _ in results]
    if keep and isinstance(geo.axes, Grid):
        return [Geo(field, geo.axes) for _ in results]
    return [Geo(field) for _ in results]


def normed(tracer: GeometryTracer, name: str, args: tuple, kwargs: dict, src: torch.Tensor, geo: Geo,
           result: torch.Tensor) -> Geo | None:
    """``linear`` over the last dim, ``layer_norm`` over the last dims, ``group_norm``/``instance_norm``
    over all positions: pointwise unless a position dim is among them."""
    if any(tracer.get(t) is not None for t in args[1:]):
        return None  # weights computed from the image
    if geo.axes is None:
        return Geo(geo.field)
    nd = src.dim()
    if name == "linear":
        mixed = [nd - 1]
    elif name == "layer_norm":
        count = len(as_list(arg(args, kwargs, 1, "normalized_shape")))
        mixed = list(range(nd - count, nd))
    else:  # group / instance norm: statistics over every position of a channel group
        mixed = list(range(2, nd))
    hit = [d for d in geo.axes.dims() if d in mixed]
    if not hit:
        return Geo(geo.field, geo.axes, geo.prefix)
    field = tracer.everything(src, geo)
    if name == "linear":
        return Geo(field)  # the position dim became features
    return Geo(field, geo.axes, field if isinstance(geo.axes, Tokens) and geo.axes.prefix else None)


def matmul(tracer: GeometryTracer, name: str, reflected: bool, args: tuple, result: torch.Tensor) -> Geo | None:
    """``a @ b`` (and ``einsum``): positions along a batch dim or a's rows / b's columns stay
    positions; positions along a contracted dim, or on the other side of a row × column product
    (attention scores), are all read by every output."""
    if name == "einsum":
        return _einsum(tracer, args, result)
    a, b = (args[1], args[0]) if reflected else (args[0], args[1])
    nd = result.dim()
    candidates: list[tuple[Axes, Field, Field | None]] = []
    shared: list[Field] = []
    for (operand, side), geo in _positioned(tracer, [(a, "a"), (b, "b")], shared):
        od = operand.dim()
        if od < 2:
            return None
        row, col = od - 2, od - 1
        dims = geo.axes.dims()
        if all(d < row for d in dims):  # positions in batch dims
            candidates.append((shift_axes(geo.axes, nd - od), geo.field, geo.prefix))
        elif side == "a" and dims == (row,):
            candidates.append((geo.axes.moved([nd - 2]), geo.field, geo.prefix))
        elif side == "b" and dims == (col,):
            candidates.append((geo.axes.moved([nd - 1]), geo.field, geo.prefix))
        elif (side == "a" and dims == (col,)) or (side == "b" and dims == (row,)):
            shared.append(tracer.everything(operand, geo))
        else:
            return None
    return _combine(tracer, candidates, shared, result)


def _positioned(tracer: GeometryTracer, operands: list[tuple[Any, Any]],
                shared: list[Field]) -> list[tuple[tuple[Any, Any], Geo]]:
    """The traced operands (first of each pair) that have positions, with their geometry; the field
    of a traced operand without positions goes to `shared` (it reaches every output)."""
    found = []
    for item in operands:
        geo = tracer.get(item[0])
        if geo is not None and geo.axes is None:
            shared.append(geo.field)
        elif geo is not None:
            found.append((item, geo))
    return found


def _combine(tracer: GeometryTracer, candidates: list[tuple[Axes, Field, Field | None]], shared: list[Field],
             result: torch.Tensor) -> Geo:
    """The output takes the first candidate's positions; other positions and `shared` fields reach
    every output position."""
    if not candidates:
        field = shared[0]
        for f in shared[1:]:
            field = field.union(f, image=tracer.image)
        return Geo(field)
    axes, field, prefix = candidates[0]
    extent = axes.extent(result.shape)
    extra: list[Field] = list(shared)
    for other_axes, other_field, other_prefix in candidates[1:]:
        if other_axes == axes:
            field = field.union(other_field, extent, tracer.image)
        else:  # a different set of positions meets every output: all of it
            extra.append(union_all(other_field, other_axes.extent(result.shape), tracer.image, [other_prefix]))
    for f in extra:
        field = field.union(f, extent, tracer.image)
        if prefix is not None or (isinstance(axes, Tokens) and axes.prefix):
            prefix = f if prefix is None else prefix.union(f, image=tracer.image)
    return Geo(field, axes, prefix)


def _einsum(tracer: GeometryTracer, args: tuple, result: torch.Tensor) -> Geo | None:
    """Positions whose letters survive into the output stay positions; contracted ones are all read."""
    equation = str(args[0]).replace(" ", "")
    operands = list(args[1]) if len(args) == 2 and isinstance(args[1], (list, tuple)) else list(args[1:])
    if "->" not in equation or "." in equation:
        return None
    inputs, output = equation.split("->")
    specs = inputs.split(",")
    candidates: list[tuple[Axes, Field, Field | None]] = []
    shared: list[Field] = []
    for (operand, spec), geo in _positioned(tracer, list(zip(operands, specs)), shared):
        letters = [spec[d] for d in geo.axes.dims()]
        if all(letter in output for letter in letters):
            candidates.append((geo.axes.moved([output.index(letter) for letter in letters]), geo.field, geo.prefix))
        else:
            shared.append(tracer.everything(operand, geo))
    return _combine(tracer, candidates, shared, result)


def attention(tracer: GeometryTracer, name: str, args: tuple, kwargs: dict,
              results: list[torch.Tensor]) -> list[Geo | None] | None:
    """Every query position reads all key and value positions (and any mask)."""
    query = arg(args, kwargs, 0, "query")
    key = arg(args, kwargs, 1, "key")
    value = arg(args, kwargs, 2, "value")
    result = results[0]
    geo = tracer.get(query)
    token_dim = 0 if name == "multi_head_attention_forward" else query.dim() - 2
    shared: list[Field] = []
    for other in [key, value] + [t for t in tensors_in((args[3:], kwargs)) if t is not key and t is not value]:
        g = tracer.get(other)
        if g is None:
            continue
        if g.axes is not None and g.axes.dims() != ((0,) if name == "multi_head_attention_forward"
                                                    else (other.dim() - 2,)):
            return None
        shared.append(tracer.everything(other, g))
    if geo is None or geo.axes is None:
        field = shared[0] if shared else (geo.field if geo else UNKNOWN)
        for f in shared[1:]:
            field = field.union(f, image=tracer.image)
        return [Geo(field)] + [None] * (len(results) - 1)
    if geo.axes.dims() != (token_dim,):
        return None
    extent = geo.axes.extent(query.shape)
    field, prefix = geo.field, geo.prefix
    for f in shared:
        field = field.union(f, extent, tracer.image)
        prefix = f if prefix is None else prefix.union(f, image=tracer.image)
    axes = geo.axes.moved([token_dim if name == "multi_head_attention_forward" else result.dim() - 2])
    has_prefix = isinstance(axes, Tokens) and axes.prefix
    return [Geo(field, axes, prefix if has_prefix else None)] + [Geo(UNKNOWN)] * (len(results) - 1)


def window_rule(tracer: GeometryTracer, module: nn.Module, inputs: tuple, output: Any) -> None:
    """Fix the geometry of a module's output where its internals cannot be followed op by op
    but its extent is known: window attention (attributes ``window_size`` and ``shift_size``)."""
    window = getattr(module, "window_size", None)
    if window is None or not hasattr(module, "shift_size"):
        return
    _windowed(tracer, inputs, output, window, everything=False)


def partition_rule(tracer: GeometryTracer, module: nn.Module, inputs: tuple, output: Any) -> None:
    """MaxViT's partition attention (attributes ``partition_type`` and ``p``): a ``window``
    partition reads aligned ``p × p`` windows (a bound), a ``grid`` partition a grid strided over
    the whole map (every position)."""
    kind, p = getattr(module, "partition_type", None), getattr(module, "p", None)
    if kind not in ("window", "grid") or not isinstance(p, int):
        return
    _windowed(tracer, inputs, output, p, everything=kind == "grid")


def has_module_rule(module: nn.Module) -> bool:
    """Whether :func:`window_rule` or :func:`partition_rule` may fix this module's output."""
    return hasattr(module, "window_size") or hasattr(module, "partition_type")


def _windowed(tracer: GeometryTracer, inputs: tuple, output: Any, window: Any, everything: bool) -> None:
    """Give a map-in, map-out module's output the field of windows of `window` tokens around each
    position (or the whole map), unless the op-by-op trace already followed it exactly."""
    src = next(iter(tensors_in(inputs)), None)
    res = next(iter(tensors_in(output)), None)
    geo_in, geo_out = tracer.get(src), tracer.get(res)
    if src is None or res is None or geo_in is None or not isinstance(geo_in.axes, Grid) \
            or src.shape != res.shape:
        return
    if geo_out is not None and geo_out.field.exact:
        return  # the op-by-op trace followed it
    size = pair(window if not isinstance(window, int) else (window, window))
    rows, cols = geo_in.axes.extent(src.shape)
    if everything or (size[0] >= rows and size[1] >= cols):
        field = tracer.everything(src, geo_in)
    else:  # a token's window lies somewhere within window − 1 tokens of it, shifted or not
        field = geo_in.field.after((2 * size[0] - 1, 2 * size[1] - 1), (1, 1), (size[0] - 1, size[1] - 1),
                                   tight=False)
        field = field.union(geo_in.field, (rows, cols), tracer.image)
    tracer.set(res, Geo(field, geo_in.axes))
