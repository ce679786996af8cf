"""The layer table: every named module with aliases, type, layout, output shape, units and
receptive field — and the layout of any layer for the pipelines that read its units."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Iterable

from ..errors import VisUsageError
from ..limits import MAX_TRACE_BYTES, side
from ..models import LoadedModel
from .layout import Layout, decide_layout, module_layout, parse_layout
from .receptive import Field, LayerGeometry, trace_geometry
from .tracer import TraceTooLarge

__all__ = ["LayerInfo", "layer_field", "layer_geometry", "layer_layout", "layer_table"]


@dataclass(frozen=True)
class LayerInfo:
    """One row of ``vis layers``: `layout` (``CHW``, ``HWC``, ``NC:P+RxQ``, ``C``; None when it
    cannot be told), `units` (its channels), `rf` (``exact``, ``bound``, ``global`` or ``unknown``)
    and the field's numbers (null unless exact or bound)."""

    name: str
    aliases: list[str]
    type: str
    layout: str | None
    shape: list[int] | None
    units: int | None
    rf: str | None
    rf_size: list[int] | None
    rf_stride: list[int] | None
    rf_offset: list[int] | None

    def to_dict(self) -> dict:
        """The row as ``vis layers --json`` prints it."""
        return asdict(self)


def layer_geometry(model: LoadedModel, size: int | None = None, param: str = "size") -> dict[str, LayerGeometry]:
    """Traced geometry of every layer at input `size` (default: the model's), memoised on the model;
    a size too small for the model, or one above the model's own whose trace would keep more than
    :data:`~vistoolbox.limits.MAX_TRACE_BYTES`, is a usage error naming `param`."""
    size = model.input_size if size is None else side(size, param)
    key = ("geometry", size)
    budget = MAX_TRACE_BYTES if size > model.input_size else None  # the model's own size is always traced
    if key not in model.memo:
        estimate = _trace_estimate(model, size) if budget is not None else 0.0
        try:
            if budget is not None and estimate > budget:
                raise TraceTooLarge(budget)
            model.memo[key] = trace_geometry(model.module, size, channels=model.preprocessing.channels,
                                             max_bytes=budget)
        except TraceTooLarge:
            largest = max(model.input_size, math.isqrt(int(size * size * MAX_TRACE_BYTES / max(estimate, 1.0))))
            raise VisUsageError(f"tracing the layers of model {model.name!r} at {size}x{size} px keeps more than "
                                f"{MAX_TRACE_BYTES / 2**30:g} GiB of activations (the limit above the model's own "
                                f"size, {model.input_size}); use a smaller `{param}`"
                                + (f", e.g. {min(largest, size - 1)}" if estimate > MAX_TRACE_BYTES else "")) from None
        except RuntimeError as exc:  # a map shrank to nothing, a kernel larger than its input, …
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]
            smallest = _smallest_size(model, size)
            raise VisUsageError(f"an input of {size}x{size} px is too small for model {model.name!r} ({reason}); "
                                f"use a larger `{param}`" + (f", at least {smallest}" if smallest else "")) from None
    return model.memo[key]


def _smallest_size(model: LoadedModel, failed: int) -> int | None:
    """The smallest input side above `failed` the model traces at (doubling, then bisecting; only on
    the error path), or None when even the model's own size or 2048 fails."""
    def works(size: int) -> bool:
        try:
            trace_geometry(model.module, size, names=[], channels=model.preprocessing.channels)
            return True
        except RuntimeError:
            return False

    low, high = failed, failed * 2
    while not works(high):
        if high >= 2048:
            return None
        low, high = high, min(high * 2, 2048)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if works(middle) else (middle, high)
    return high


def _trace_estimate(model: LoadedModel, size: int) -> float:
    """Bytes a trace at `size` keeps, estimated before running it: the float32 outputs of the leaf
    modules at the model's own size, scaled by the ratio of the areas."""
    own = layer_geometry(model)
    leaves = (name for name, module in model.module.named_modules() if name and not any(module.children()))
    total = sum(math.prod(geo.shape) * 4 for name in leaves if (geo := own.get(name)) and geo.shape)
    return total * (size / model.input_size) ** 2


def _overridden(model: LoadedModel, name: str, geo: LayerGeometry | None) -> Layout | None:
    """The user's layout for `name`, checked against its output shape."""
    spec = model.layouts[name]
    try:
        layout = parse_layout(spec)
    except ValueError as exc:
        raise VisUsageError(f"`layouts` for layer {name!r}: {exc}") from None
    shape = geo.shape if geo else None
    if shape is not None and not layout.fits(shape):
        raise VisUsageError(f"`layouts` gives layer {name!r} layout {layout}, which does not fit its output "
                            f"shape {list(shape)}")
    return layout


def _inherited(shape: tuple[int, ...], source: tuple[tuple[int, ...], Layout] | None,
               same: Layout | None) -> Layout | None:
    """A lost layer's layout from where its tensor came from: the layout of a layer that returned this
    very tensor (a container and its last child), else its input's when the module kept the shape
    (elementwise ops, residual sums), or kept a channels-last input's channels (axes swapped)."""
    if same is not None:
        return same
    if source is None:
        return None
    src_shape, layout = source
    if tuple(src_shape) == tuple(shape):
        return layout
    if str(layout) == "HWC" and len(shape) == 3 and shape[-1] == src_shape[-1]:
        return layout
    return None


def _layouts(model: LoadedModel, size: int) -> dict[str, tuple[Layout | None, Field | None]]:
    """Every traced layer's layout and field before overrides (memoised): the tracer's rule; where it
    lost the positions, what the module is; then where its tensor came from (fields unknown). An
    output computed from parameters alone (no image in it) has none."""
    key = ("layouts", size)
    if key in model.memo:
        return model.memo[key]
    geometry = layer_geometry(model, size)
    found: dict[str, tuple[Layout | None, Field | None]] = {}
    for name, geo in geometry.items():
        traced = decide_layout(geo.shape, geo.axes) if geo.field is not None else None
        field = geo.field
        if traced is None and geo.field is not None:  # image-independent outputs keep no layout
            traced = module_layout(model.module.get_submodule(name), geo.shape)
            field = None if traced is not None else field
        found[name] = (traced, field)
    for _ in range(len(geometry)):  # each pass resolves at least one more layer, or stops
        by_tensor: dict[int, tuple[tuple[int, ...], Layout]] = {}
        for name, geo in geometry.items():
            layout = found[name][0]
            if layout is not None and geo.output is not None and geo.shape is not None:
                by_tensor.setdefault(geo.output, (geo.shape, layout))
        changed = False
        for name, geo in geometry.items():
            if found[name][0] is not None or geo.shape is None or geo.field is None:
                continue
            same = by_tensor.get(geo.output)  # type: ignore[arg-type]
            source = by_tensor.get(geo.source) if geo.source is not None else None
            layout = _inherited(geo.shape, source, same[1] if same else None)
            if layout is not None and layout.fits(geo.shape):
                found[name], changed = (layout, None), True
        if not changed:
            break
    model.memo[key] = found
    return found


def _describe(model: LoadedModel, name: str, geo: LayerGeometry | None,
              size: int | None) -> tuple[Layout | None, Field | None]:
    """A layer's layout (override first, else :func:`_layouts`) and the field of its positions (None
    when the override disagrees with what was traced: the traced positions are not the user's)."""
    traced, field = _layouts(model, model.input_size if size is None else size).get(name, (None, None))
    if name in model.layouts:
        layout = _overridden(model, name, geo)
        if layout != traced:
            field = None
        return layout, field
    return traced, field


def layer_table(model: LoadedModel, size: int | None = None, names: Iterable[str] | None = None,
                param: str = "size") -> list[LayerInfo]:
    """Describe every named module except the root (containers included), or only the canonical
    `names`, at input `size` (one traced forward pass, memoised). Errors name the size `param`."""
    geometry = layer_geometry(model, size, param)
    wanted = set(names) if names is not None else None
    rows = []
    for name, module in model.module.named_modules():
        if not name or (wanted is not None and name not in wanted):
            continue
        geo = geometry.get(name)
        shape = list(geo.shape) if geo and geo.shape is not None else None
        layout, field = _describe(model, name, geo, size)
        kind: str | None = None
        if shape is not None:
            kind = "global" if layout is not None and not layout.spatial else (
                field.kind if field is not None and layout is not None else "unknown")
        numbers = kind in ("exact", "bound")
        rows.append(LayerInfo(
            name=name, aliases=model.aliases_of(name), type=type(module).__name__,
            layout=str(layout) if layout else None, shape=shape,
            units=layout.channels(shape) if layout and shape else None, rf=kind,
            rf_size=list(field.size) if numbers else None,  # type: ignore[union-attr]
            rf_stride=list(field.stride) if numbers else None,  # type: ignore[union-attr]
            rf_offset=list(field.offset) if numbers else None))  # type: ignore[union-attr]
    return rows


def layer_layout(model: LoadedModel, layer: str, size: int | None = None) -> Layout:
    """The layout of one layer (name or alias); a layer whose layout cannot be told is a usage error
    that says how to give it."""
    path = model.resolve(layer)
    geo = layer_geometry(model, size).get(path)
    if geo is None or geo.shape is None:
        raise VisUsageError(f"layer {layer!r} produced no tensor output in a forward pass")
    layout, _ = _describe(model, path, geo, size)
    if layout is None:
        raise VisUsageError(f"layer {layer!r} has output shape {list(geo.shape)} and vistoolbox cannot tell where "
                            f"its channels and positions are; give its layout with `layouts` ({path}=HWC, CHW, C "
                            "or NC:[P+]RxQ, e.g. NC:1+14x14)")
    return layout


def layer_field(model: LoadedModel, layer: str, size: int | None = None) -> tuple[tuple[int, ...], Field]:
    """Output shape and receptive field of one layer (name or alias) at input `size`."""
    path = model.resolve(layer)
    geo = layer_geometry(model, size).get(path)
    if geo is None or geo.shape is None or geo.field is None:
        raise ValueError(f"layer {layer!r} produced no tensor output")
    return geo.shape, geo.field
