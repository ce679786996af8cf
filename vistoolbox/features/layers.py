"""The layer table: every named module with aliases, type, output shape, units and receptive field."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from ..errors import VisUsageError
from ..limits import side
from ..models import LoadedModel
from .receptive import Field, trace_geometry

__all__ = ["LayerInfo", "layer_field", "layer_table"]


@dataclass(frozen=True)
class LayerInfo:
    """One row of ``vis layers``."""

    name: str
    aliases: list[str]
    type: str
    shape: list[int] | None
    units: int | None
    rf_size: list[int] | None
    rf_stride: list[int] | None
    rf_offset: list[int] | None

    def to_dict(self) -> dict:
        """The row as ``vis layers --json`` prints it."""
        return asdict(self)


def layer_table(model: LoadedModel, size: int | None = None, names: list[str] | None = None,
                param: str = "size") -> list[LayerInfo]:
    """Describe every named module except the root (containers included), or only the canonical
    `names`, at input `size` (one traced forward pass). Errors name the size `param`."""
    size = model.input_size if size is None else side(size, param)
    try:
        geometry = trace_geometry(model.module, size, names=names, channels=model.preprocessing.channels)
    except RuntimeError as exc:  # a map shrank to nothing, a kernel larger than its input, …
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]
        raise VisUsageError(f"an input of {size}x{size} px is too small for model {model.name!r} ({reason}); "
                            f"use a larger `{param}`, e.g. {model.input_size}") from None
    wanted = set(names) if names is not None else None
    rows = []
    for name, module in model.module.named_modules():
        if not name or (wanted is not None and name not in wanted):
            continue
        geo = geometry.get(name)
        shape = list(geo.shape) if geo and geo.shape is not None else None
        field: Field | None = geo.field if geo else None
        spatial = (field is not None and field.exact and not field.is_global and shape is not None
                   and len(shape) == 3)  # unknown geometry (e.g. transformer tokens) → null
        rows.append(LayerInfo(
            name=name, aliases=model.aliases_of(name), type=type(module).__name__, shape=shape,
            units=shape[0] if shape else None,
            rf_size=list(field.size) if spatial else None,  # type: ignore[union-attr]
            rf_stride=list(field.stride) if spatial else None,  # type: ignore[union-attr]
            rf_offset=list(field.offset) if spatial else None))  # type: ignore[union-attr]
    return rows


def layer_field(model: LoadedModel, layer: str, size: int | None = None) -> tuple[tuple[int, ...], Field]:
    """Output shape (C, H, W) and receptive field of one layer (name or alias) at input `size`."""
    path = model.resolve(layer)
    geo = trace_geometry(model.module, size or model.input_size, names=[path],
                         channels=model.preprocessing.channels)[path]
    if geo.shape is None or geo.field is None:
        raise ValueError(f"layer {layer!r} produced no tensor output")
    return geo.shape, geo.field
