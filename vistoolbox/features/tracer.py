"""The op-by-op geometry tracer: a :class:`~torch.overrides.TorchFunctionMode` that gives every
tensor computed from the image a :class:`Geo` — where its positions are (:mod:`.positions`) and
the receptive field of each position (:mod:`.field`).

Rules, by what an op does to positions:

* sliding windows (``conv2d``, pools) on a channels-first grid: the classic recurrence;
* shape ops (reshape/view/flatten, permute/transpose, indexing and slicing, cat/stack, pad) move the
  position dims; a grid flattened into one dim becomes a token axis and back; tokens concatenated in
  front of a token grid (a class token) become its ``prefix``; strided slices are stride-1 kernels;
* pointwise ops (an explicit list: arithmetic, activations, dropout, batch norm…) take the union of
  their inputs' fields; an input broadcast over the positions (a squeeze-excitation gate) brings its
  whole field to every position;
* ops that read along the position dims — attention, softmax/reductions/``layer_norm``/
  ``group_norm``/``linear`` over a position dim — give every output position the union of all
  positions (``GLOBAL`` when that covers the image; :mod:`.mixing`);
* resampling (``interpolate``, ``pixel_shuffle``…) keeps a channels-first map's positions but not
  their field; everything else that touches a traced tensor makes its result ``unknown`` — never a
  field smaller than the truth.

Modules whose internals scatter positions but whose extent is known are handled where they return
(:func:`~.mixing.window_rule`: Swin's window attention).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from . import mixing
from .field import UNKNOWN, Field, Pair, union_all
from .opargs import arg, as_list, pair, tensors_in
from .positions import Axes, Geo, Grid, Tokens, index_plan, permute_axes, reshape_axes, shift_axes

__all__ = ["GeometryTracer", "TraceTooLarge", "op_name"]


class TraceTooLarge(Exception):
    """The traced tensors passed the tracer's `max_bytes` (``args[0]``: the limit in bytes)."""


POINTWISE = frozenset("""
add sub subtract mul multiply div divide true_divide truediv floor_divide floordiv remainder mod fmod pow
neg negative abs absolute exp exp2 expm1 log log2 log10 log1p sqrt rsqrt square reciprocal sign sgn floor
ceil round trunc frac clamp clip clamp_min clamp_max maximum minimum fmax fmin where masked_fill lerp
addcmul addcdiv relu relu6 leaky_relu elu selu celu gelu silu mish sigmoid logsigmoid tanh hardtanh
hardswish hardsigmoid softplus softsign tanhshrink hardshrink softshrink threshold prelu rrelu glu erf
erfc erfinv sin cos tan atan asin acos sinh cosh atan2 logit nan_to_num batch_norm dropout dropout1d
dropout2d dropout3d alpha_dropout feature_alpha_dropout eq ne lt le gt ge logical_and logical_or
logical_not logical_xor isnan isinf isfinite bool float double half bfloat16 int long to type type_as
contiguous clone detach requires_grad cpu cuda channel_shuffle expand expand_as broadcast_to
""".split())
RESHAPES = frozenset("view reshape flatten unflatten unsqueeze squeeze view_as reshape_as".split())
PERMUTES = frozenset("permute transpose swapaxes swapdims movedim moveaxis t".split())
SLIDING = {"conv2d": "conv", "convolution": "conv", "max_pool2d": "pool", "max_pool2d_with_indices": "pool",
           "avg_pool2d": "pool", "adaptive_avg_pool2d": "adaptive", "adaptive_max_pool2d": "adaptive",
           "adaptive_max_pool2d_with_indices": "adaptive"}
RESAMPLES = frozenset("interpolate upsample upsample_nearest upsample_bilinear pixel_shuffle pixel_unshuffle "
                      "grid_sample".split())


def op_name(func: Any) -> tuple[str, bool]:
    """Normalised op name (``__iadd__`` → ``add``, ``relu_`` → ``relu``) and whether operands are
    reflected (``__rmatmul__``)."""
    raw = getattr(func, "__name__", "") or ""
    name = raw.strip("_")
    reflected = False
    if raw.startswith("__"):
        if name[:1] == "i" and name[1:] in POINTWISE | {"matmul"}:
            name = name[1:]
        elif name[:1] == "r" and name[1:] in POINTWISE | {"matmul"}:
            name, reflected = name[1:], True
    return name, reflected


class GeometryTracer(TorchFunctionMode):
    """Attaches a :class:`Geo` to every tensor computed from the traced image (keyed by id; the
    tensors are kept alive so ids stay unique). `image` is the input's (h, w)."""

    def __init__(self, image: Pair, max_bytes: int | None = None) -> None:
        super().__init__()
        self.image = image
        self.geos: dict[int, Geo] = {}
        self.alive: list[torch.Tensor] = []
        self.max_bytes, self.kept = max_bytes, 0  # bytes of the tensors kept alive (views counted too)
        self.unfollowed: dict[str, int] = {}  # ops the rules could not follow, with counts
        self.carriers: dict[int, list[int]] = {}  # a pointwise result → the same-shaped inputs it carries on

    # ------------------------------------------------------------------ bookkeeping
    def set(self, tensor: torch.Tensor, geo: Geo) -> None:
        self.geos[id(tensor)] = geo
        self.alive.append(tensor)
        self.kept += tensor.numel() * tensor.element_size()
        if self.max_bytes is not None and self.kept > self.max_bytes:
            raise TraceTooLarge(self.max_bytes)

    def get(self, tensor: Any) -> Geo | None:
        return self.geos.get(id(tensor)) if isinstance(tensor, torch.Tensor) else None

    def extent(self, tensor: torch.Tensor, geo: Geo) -> Pair:
        return geo.axes.extent(tensor.shape) if geo.axes is not None else (1, 1)

    def everything(self, tensor: torch.Tensor, geo: Geo) -> Field:
        """The field of an output that reads every position (and prefix token) of `tensor`."""
        if geo.axes is None:
            return geo.field
        return union_all(geo.field, self.extent(tensor, geo), self.image, [geo.prefix])

    # ------------------------------------------------------------------ dispatch
    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: D401
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        traced = [(t, g) for t in tensors_in((args, kwargs)) if (g := self.get(t)) is not None]
        if not traced:
            return out
        results = list(tensors_in(out))
        if not results:
            return out
        name, reflected = op_name(func)
        try:
            geos = self.rule(name, reflected, args, kwargs, traced, out, results)
        except Exception:  # noqa: BLE001 - an argument form no rule expected: the result is unknown
            geos = None
        if geos is None:
            self.unfollowed[name] = self.unfollowed.get(name, 0) + 1
            geos = [self.unknown(traced, res) for res in results]
        for res, geo in zip(results, geos):
            if geo is not None:
                self.set(res, geo)
        if name in POINTWISE:
            carriers = [id(t) for t, _ in traced if t.shape == results[0].shape]
            if carriers:
                self.carriers[id(results[0])] = carriers
        return out

    def origin(self, tensor_id: int, stops: set[int], own: int) -> int:
        """The tensor `tensor_id` was carried on from through pointwise ops (a residual sum, a
        scaling): the nearest one in `stops` (a module's output) other than `own`, or itself."""
        queue, visited = [tensor_id], {tensor_id}
        while queue:
            current = queue.pop(0)
            if current in stops and current != own:
                return current
            for nxt in self.carriers.get(current, ()):
                if nxt not in visited:
                    visited.add(nxt)
                    queue.append(nxt)
        return tensor_id

    def unknown(self, traced: list[tuple[torch.Tensor, Geo]], result: torch.Tensor) -> Geo:
        """An op the tracer cannot follow: the field is unknown; the positions stay where they were
        when the result has the shape of a traced input."""
        for tensor, geo in traced:
            if tensor.shape == result.shape and geo.axes is not None:
                return Geo(UNKNOWN, geo.axes, UNKNOWN if geo.prefix is not None else None)
        return Geo(UNKNOWN)

    def rule(self, name: str, reflected: bool, args: tuple, kwargs: dict, traced: list, out: Any,
             results: list[torch.Tensor]) -> list[Geo | None] | None:
        first, geo = traced[0]
        if name in SLIDING:
            slid = self.sliding(name, args, kwargs, first, geo, results[0])  # None: not a map it can follow
            return [slid or self.unknown(traced, results[0])] + [None] * (len(results) - 1)
        if name in RESHAPES:
            return [self.reshaped(first, geo, results[0])]
        if name in PERMUTES:
            return [self.permuted(name, args, kwargs, first, geo, results[0])]
        if name in ("getitem", "select", "narrow"):
            return [self.indexed(name, args, kwargs, first, geo, results[0])]
        if name in ("unbind", "chunk", "split", "tensor_split"):
            return self.pieces(name, args, kwargs, first, geo, results)
        if name in ("cat", "concat", "concatenate", "stack"):
            return [self.joined(name, args, kwargs, results[0])]
        if name == "pad":
            return [self.padded(args, kwargs, first, geo, results[0])]
        if name in ("max", "min") and len(args) > 1 and isinstance(args[1], torch.Tensor):
            name = "maximum"
        if name in POINTWISE:
            return [self.pointwise(traced, res) for res in results]
        if name in mixing.REDUCTIONS or name in mixing.ALONG:
            return mixing.along(self, name, args, kwargs, first, geo, results)
        if name in ("linear", "layer_norm", "group_norm", "instance_norm"):
            return [mixing.normed(self, name, args, kwargs, first, geo, results[0])]
        if name in mixing.MATMULS or name == "einsum":
            return [mixing.matmul(self, name, reflected, args, results[0])]
        if name in ("scaled_dot_product_attention", "multi_head_attention_forward"):
            return mixing.attention(self, name, args, kwargs, results)
        if name in RESAMPLES and geo.axes == Grid(first.dim() - 2, first.dim() - 1):
            return [Geo(UNKNOWN, Grid(res.dim() - 2, res.dim() - 1)) for res in results]  # same map, new size
        return None

    # ------------------------------------------------------------------ rules
    def sliding(self, name: str, args: tuple, kwargs: dict, src: torch.Tensor, geo: Geo,
                result: torch.Tensor) -> Geo | None:
        kind, nd = SLIDING[name], src.dim()
        if geo.axes != Grid(nd - 2, nd - 1) or any(self.get(t) for t in args[1:2]):
            return None
        field = geo.field
        if kind == "conv":
            if args[1].dim() != 4 or (name == "convolution" and arg(args, kwargs, 6, "transposed", False)):
                return None  # not a 2-D convolution, or a transposed one
            kernel = tuple(args[1].shape[-2:])
            pad = arg(args, kwargs, 4, "padding", 0)
            dil = pair(arg(args, kwargs, 5, "dilation", 1))
            if isinstance(pad, str):  # 'same' keeps size: pad = d·(k−1)//2 on the leading side
                pad = tuple(d * (k - 1) // 2 for k, d in zip(kernel, dil)) if pad == "same" else (0, 0)
            field = field.after(kernel, pair(arg(args, kwargs, 3, "stride", 1)), pair(pad), dil)  # type: ignore[arg-type]
        elif kind == "pool":
            kernel = pair(arg(args, kwargs, 1, "kernel_size"))
            stride = arg(args, kwargs, 2, "stride", None)
            stride = kernel if stride is None or (isinstance(stride, (list, tuple)) and not stride) else pair(stride)
            pad = pair(arg(args, kwargs, 3, "padding", 0))
            dil = pair(arg(args, kwargs, 4, "dilation", 1)) if name.startswith("max") else (1, 1)
            field = field.after(kernel, stride, pad, dil)
        else:
            (h_in, w_in), (h_out, w_out) = tuple(src.shape[-2:]), tuple(result.shape[-2:])
            if (h_out, w_out) == (1, 1):
                field = self.everything(src, geo)
            elif (h_in, w_in) != (h_out, w_out):
                # bins of an adaptive pool: exact when the sizes divide, else a bound by the largest bin
                kernel = (-(-h_in // h_out), -(-w_in // w_out))
                exact = h_in % h_out == 0 and w_in % w_out == 0
                field = field.after(kernel, (h_in // h_out, w_in // w_out), (0, 0), tight=exact)
        return Geo(field, Grid(result.dim() - 2, result.dim() - 1))

    def reshaped(self, src: torch.Tensor, geo: Geo, result: torch.Tensor) -> Geo:
        if geo.axes is None:
            return Geo(geo.field)
        moved = reshape_axes(geo.axes, tuple(src.shape), tuple(result.shape))
        if moved.kind in ("carried", "tokens", "grid"):
            return Geo(geo.field, moved.axes, geo.prefix if isinstance(moved.axes, Tokens) else None)
        if moved.kind == "folded":
            return Geo(self.everything(src, geo))
        return Geo(UNKNOWN)

    def permuted(self, name: str, args: tuple, kwargs: dict, src: torch.Tensor, geo: Geo,
                 result: torch.Tensor) -> Geo:
        if geo.axes is None:
            return Geo(geo.field)
        nd = src.dim()
        order = list(range(nd))
        if name == "permute":
            dims = kwargs.get("dims", args[1] if len(args) == 2 and not isinstance(args[1], int) else args[1:])
            order = [int(d) % nd for d in dims]
        elif name == "t":
            order = order[::-1]
        elif name in ("movedim", "moveaxis"):
            source = [int(d) % nd for d in as_list(arg(args, kwargs, 1, "source"))]
            dest = [int(d) % nd for d in as_list(arg(args, kwargs, 2, "destination"))]
            placed: list[int | None] = [None] * nd
            for s_dim, d_dim in zip(source, dest):
                placed[d_dim] = s_dim
            rest = iter(d for d in range(nd) if d not in source)
            order = [p if p is not None else next(rest) for p in placed]
        else:
            a, b = (int(d) % nd for d in args[1:3])
            order[a], order[b] = order[b], order[a]
        return Geo(geo.field, permute_axes(geo.axes, order), geo.prefix)

    def _slice_field(self, field: Field, axis: int, start: int, step: int) -> Field:
        if field.is_global or not field.exact:
            return field
        kernel, stride, pad = [(1, 1), [1, 1], [0, 0]]
        stride[axis], pad[axis] = step, -start
        return field.after(kernel, tuple(stride), tuple(pad))  # type: ignore[arg-type]

    def indexed(self, name: str, args: tuple, kwargs: dict, src: torch.Tensor, geo: Geo,
                result: torch.Tensor) -> Geo | None:
        if name == "select":
            dim, index = int(arg(args, kwargs, 1, "dim")) % src.dim(), int(arg(args, kwargs, 2, "index"))
            key: Any = tuple([slice(None)] * dim + [index])
        elif name == "narrow":
            dim, start = int(arg(args, kwargs, 1, "dim")) % src.dim(), int(arg(args, kwargs, 2, "start"))
            key = tuple([slice(None)] * dim + [slice(start, start + int(arg(args, kwargs, 3, "length")))])
        else:
            key = args[1]
        if isinstance(key, torch.Tensor) and self.get(key) is not None:
            return None
        return self._index(src, geo, key, result)

    def _index(self, src: torch.Tensor, geo: Geo, key: Any, result: torch.Tensor) -> Geo | None:
        if geo.axes is None:
            return Geo(geo.field)
        plan = index_plan(key, tuple(src.shape))
        if not plan.ok:
            return None
        axes, field = geo.axes, geo.field
        if isinstance(axes, Grid):
            if any(plan.out.get(d) is None for d in axes.dims()):
                return None  # one row or column of the grid: not a 2-D map any more
            for a, d in enumerate(axes.dims()):
                start, _stop, step = plan.slices[d]
                if step != 1 or start != 0:
                    field = self._slice_field(field, a, start, step)
            return Geo(field, axes.moved([plan.out[d] for d in axes.dims()]))  # type: ignore[list-item]
        n = axes.n
        total = axes.prefix + axes.rows * axes.cols
        if plan.out.get(n) is None:  # one token
            index = plan.ints[n]
            if index < axes.prefix:
                return Geo(geo.prefix) if geo.prefix is not None else None
            y, x = divmod(index - axes.prefix, axes.cols)
            if not field.exact or field.is_global:
                return Geo(field)
            return Geo(Field(field.size, (0, 0), (field.offset[0] + y * field.stride[0],
                                                   field.offset[1] + x * field.stride[1]), tight=field.tight))
        start, stop, step = plan.slices[n]
        if step == 1 and stop >= total and start <= axes.prefix:
            prefix = axes.prefix - start
            return Geo(field, Tokens(plan.out[n], axes.rows, axes.cols, prefix),  # type: ignore[arg-type]
                       geo.prefix if prefix else None)
        if step == 1 and stop <= axes.prefix:  # prefix tokens only
            return Geo(geo.prefix) if geo.prefix is not None else None
        return None

    def pieces(self, name: str, args: tuple, kwargs: dict, src: torch.Tensor, geo: Geo,
               results: list[torch.Tensor]) -> list[Geo | None] | None:
        dim = int(arg(args, kwargs, 1 if name == "unbind" else 2, "dim", 0)) % src.dim()
        geos: list[Geo | None] = []
        start = 0
        for res in results:
            if name == "unbind":
                key: Any = tuple([slice(None)] * dim + [start])
                start += 1
            else:
                size = int(res.shape[dim])
                key = tuple([slice(None)] * dim + [slice(start, start + size)])
                start += size
            geos.append(self._index(src, geo, key, res))
        return geos

    def joined(self, name: str, args: tuple, kwargs: dict, result: torch.Tensor) -> Geo | None:
        parts = list(arg(args, kwargs, 0, "tensors"))
        dim = int(arg(args, kwargs, 1, "dim", 0))
        geos = [self.get(p) for p in parts]
        traced = [(p, g) for p, g in zip(parts, geos) if g is not None]
        if name == "stack":
            dim %= result.dim()
            return self._stacked(traced, dim)
        dim %= result.dim()
        with_axes = [(p, g) for p, g in traced if g.axes is not None]
        if not with_axes:
            field = traced[0][1].field
            for _, g in traced[1:]:
                field = field.union(g.field, image=self.image)
            return Geo(field)
        lead, lead_geo = with_axes[0]
        axes = lead_geo.axes
        assert axes is not None
        if dim not in axes.dims():  # features joined: positions unchanged
            field, prefix = lead_geo.field, lead_geo.prefix
            extent = self.extent(lead, lead_geo)
            for p, g in traced:
                if p is lead:
                    continue
                if g.axes != axes or self.extent(p, g) != extent:
                    return None
                field = field.union(g.field, extent, self.image)
                if g.prefix is not None:
                    prefix = g.prefix if prefix is None else prefix.union(g.prefix, image=self.image)
            return Geo(field, axes, prefix)
        if not isinstance(axes, Tokens) or len(with_axes) != 1:
            return None  # grids joined side by side, or two token grids
        at = next(i for i, p in enumerate(parts) if p is lead)
        if at != len(parts) - 1:
            return None  # tokens appended after the grid: not a prefix
        prefix_field = lead_geo.prefix
        count = 0
        for p, g in zip(parts[:at], geos[:at]):
            count += int(p.shape[dim])
            if g is not None:
                prefix_field = g.field if prefix_field is None else prefix_field.union(g.field, image=self.image)
        return Geo(lead_geo.field, replace(axes, prefix=axes.prefix + count), prefix_field)

    def _stacked(self, traced: list[tuple[torch.Tensor, Geo]], dim: int) -> Geo | None:
        lead, geo = traced[0]
        if geo.axes is None:
            return Geo(geo.field)
        field = geo.field
        for p, g in traced[1:]:
            if g.axes != geo.axes:
                return None
            field = field.union(g.field, self.extent(lead, geo), self.image)
        return Geo(field, geo.axes.moved([d + (d >= dim) for d in geo.axes.dims()]), geo.prefix)

    def padded(self, args: tuple, kwargs: dict, src: torch.Tensor, geo: Geo, result: torch.Tensor) -> Geo | None:
        if geo.axes is None:
            return Geo(geo.field)
        pads = list(arg(args, kwargs, 1, "pad", ()))
        mode = arg(args, kwargs, 2, "mode", "constant")
        nd = src.dim()
        before = {nd - 1 - i // 2: int(p) for i, p in enumerate(pads) if i % 2 == 0}
        after = {nd - 1 - i // 2: int(p) for i, p in enumerate(pads) if i % 2 == 1}
        touched = [d for d in geo.axes.dims() if before.get(d, 0) or after.get(d, 0)]
        if not touched:
            return Geo(geo.field, geo.axes, geo.prefix)
        if isinstance(geo.axes, Tokens) or mode == "circular":
            return None
        field = geo.field
        if field.exact and not field.is_global:
            offset = list(field.offset)
            for a, d in enumerate(geo.axes.dims()):
                offset[a] -= before.get(d, 0) * field.stride[a]
            field = Field(field.size, field.stride, tuple(offset), tight=field.tight)  # type: ignore[arg-type]
        return Geo(field, geo.axes)

    def pointwise(self, traced: list[tuple[torch.Tensor, Geo]], result: torch.Tensor) -> Geo | None:
        """Elementwise with broadcasting (dims align from the right): each output position gets the
        union of the inputs at that position, plus everything of an input broadcast over positions."""
        nd = result.dim()
        axes: Axes | None = None
        fallback: Axes | None = None
        local: list[Field] = []
        shared: list[Field] = []
        prefixes: list[Field] = []
        for tensor, geo in traced:
            if geo.axes is None:
                shared.append(geo.field)  # no positions: one field for every element
                continue
            mapped = shift_axes(geo.axes, nd - tensor.dim())
            if isinstance(mapped, Tokens):
                if not mapped.fits(result.shape):
                    return None
            elif geo.axes.extent(tensor.shape) != mapped.extent(result.shape):
                if geo.axes.extent(tensor.shape) != (1, 1):
                    return None
                shared.append(self.everything(tensor, geo))  # broadcast over the positions
                fallback = fallback or mapped
                continue
            if axes is None:
                axes = mapped
            elif axes != mapped:
                return None
            local.append(geo.field)
            if geo.prefix is not None:
                prefixes.append(geo.prefix)
        axes = axes or fallback
        if axes is None:
            field = shared[0]
            for f in shared[1:]:
                field = field.union(f, image=self.image)
            return Geo(field)
        extent = axes.extent(result.shape)
        fields = local + shared
        field = fields[0]
        for f in fields[1:]:
            field = field.union(f, extent, self.image)
        prefix = None
        if isinstance(axes, Tokens) and axes.prefix:
            for f in prefixes + shared:
                prefix = f if prefix is None else prefix.union(f, image=self.image)
        return Geo(field, axes, prefix)
