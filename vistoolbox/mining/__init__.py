"""Top-k mining: stream an image dataset through a model once and keep, for every unit, the k image
patches (its receptive field) that excite it most.

Modules, in pipeline order: :mod:`.datasets` (discover and decode images), :mod:`.stream` (the
streaming pass), :mod:`.topk` (exact streaming top-k and statistics), :mod:`.shards` and
:mod:`.ray` (batch-aligned parts, Ray tasks), :mod:`.patches` (patches, views, montages),
:mod:`.pipeline` (``mine`` and ``merge_runs``). The run directory they write is
:mod:`vistoolbox.rundir`.
"""
from .pipeline import merge_runs, mine
from .patches import render_unit_views

__all__ = ["merge_runs", "mine", "render_unit_views"]
