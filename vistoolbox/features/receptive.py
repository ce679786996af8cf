"""Receptive-field geometry for any torch graph, traced op by op.

One forward pass of a zero image runs under :class:`~.tracer.GeometryTracer`, which follows the
image's positions through every op (:mod:`.tracer` lists the rules) and gives every tensor the
receptive field of its positions (:mod:`.field`). Convolutions and poolings compose the classic
recurrence (effective kernel ``d·(k−1)+1``; ``size += (k_eff−1)·jump``; ``jump *= stride``;
``offset −= pad·jump``); pointwise ops take the union of their inputs' fields, so a branching graph
gets the field that covers every path; token mixing (attention, global gates) gives the union of
all it reads; outputs without positions (fc) see the whole image. Unit ``(y, x)`` of a layer covers
input rows ``offset_h + y·stride_h … offset_h + y·stride_h + size_h − 1`` (likewise columns).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import torch
from torch import nn

from .field import GLOBAL, UNKNOWN, Box, Field, Pair, crop_padded, inside_fraction, unit_box
from .mixing import has_module_rule, partition_rule, window_rule
from .opargs import tensors_in
from .positions import Axes, Geo, Grid
from .tracer import GeometryTracer

__all__ = ["GLOBAL", "UNKNOWN", "Box", "Field", "LayerGeometry", "crop_padded", "field_of", "inside_fraction",
           "trace_geometry", "unit_box"]


@dataclass(frozen=True)
class LayerGeometry:
    """Output shape (without batch), the receptive field of its positions, and where the positions
    are (`axes`, dims counted without the batch; None when it has none). `field` is None for an
    output that does not depend on the image. `output` and `source` tell the layer's tensors apart
    within one trace (equal numbers: the same tensor): what it returned, and its first input."""

    shape: tuple[int, ...] | None
    field: Field | None
    axes: Axes | None = None
    output: int | None = None
    source: int | None = None


def field_of(entry: dict) -> Field:
    """The receptive field stored in a layer-table row or manifest layer entry (``rf`` kind and
    ``rf_size``, ``rf_stride``, ``rf_offset``): null sizes mean a global field (fc layers), unless
    the kind says ``unknown``."""
    if entry.get("rf") == "unknown":
        return UNKNOWN
    if entry.get("rf_size") is None:
        return GLOBAL
    return Field(tuple(entry["rf_size"]), tuple(entry["rf_stride"]), tuple(entry["rf_offset"]),  # type: ignore[arg-type]
                 tight=entry.get("rf", "exact") == "exact")


def _pair(value: int | Iterable[int]) -> Pair:
    if isinstance(value, int):
        return (value, value)
    items = [int(v) for v in value]
    return (items[0], items[-1])


def trace_geometry(module: nn.Module, input_size: Pair | int, names: Iterable[str] | None = None,
                   channels: int = 3, max_bytes: int | None = None) -> dict[str, LayerGeometry]:
    """Output shape, positions and receptive field of every named module (or those in `names`) of
    `module`; a module called several times is described by its first call (the one
    :class:`~vistoolbox.features.extractor.FeatureExtractor` captures).

    Runs one forward pass of a zero image of `input_size` on the module's device, without gradients.
    Layers are described after the pass (in the order they returned), so a module rule fixing a
    parent's output also fixes the child that computed that very tensor. The tracer keeps every
    tensor it follows, and passing `max_bytes` of them raises :class:`~.tracer.TraceTooLarge`.
    """
    size = _pair(input_size)
    wanted = set(names) if names is not None else None
    tracer = GeometryTracer(size, max_bytes)
    seen: dict[str, tuple[object, object]] = {}  # name → (output, inputs) of its first call, kept alive
    handles = []

    def hook_for(name: str, record: bool):
        def hook(mod, inputs, out):
            window_rule(tracer, mod, inputs, out)
            partition_rule(tracer, mod, inputs, out)
            if record and name not in seen:
                seen[name] = (out, inputs)
        return hook

    for name, sub in module.named_modules():
        record = bool(name) and (wanted is None or name in wanted)
        if record or has_module_rule(sub):
            handles.append(sub.register_forward_hook(hook_for(name, record)))
    try:
        param = next(module.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        image = torch.zeros(1, channels, *size, device=device)
        with torch.no_grad(), tracer:
            tracer.set(image, Geo(Field(), Grid(2, 3)))
            module(image)
    finally:
        for handle in handles:
            handle.remove()
    outputs = {id(t) for out, _ in seen.values() for t in tensors_in(out)}
    return {name: _describe(tracer, out, inputs, outputs) for name, (out, inputs) in seen.items()}


def _describe(tracer: GeometryTracer, out: object, inputs: object, outputs: set[int]) -> LayerGeometry:
    """A module output as the layer table sees it: the first tensor, without its batch dim; its
    source is the module output its first input was carried on from (:meth:`GeometryTracer.origin`)."""
    first = next(iter(tensors_in(out)), None)
    if first is None:
        return LayerGeometry(None, None)
    src = next(iter(tensors_in(inputs)), None)
    ids = {"output": id(first), "source": tracer.origin(id(src), outputs, id(first)) if src is not None else None}
    geo = tracer.get(first)
    if geo is None:  # computed from parameters alone: no positions, no field
        return LayerGeometry(tuple(first.shape[1:]), None, **ids)
    axes = geo.axes.moved([d - 1 for d in geo.axes.dims()]) if geo.axes is not None else None
    if axes is not None and min(axes.dims()) < 0:
        axes = None  # positions along the batch dim: not a layer output we can lay out
    field = geo.field if axes is not None or not geo.field.exact else GLOBAL
    return LayerGeometry(tuple(first.shape[1:]), field, axes, **ids)
