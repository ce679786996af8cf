"""The position policy: which positions of a conv layer may give a unit's spatial maximum.

A position (y, x) of a layer is *eligible* when at least a fraction `min_inside` of its receptive
field's area lies inside the image (:func:`~vistoolbox.features.receptive.inside_fraction`). The rest
of such a field is the convolutions' zero padding, which a network sees as a mean-colour frame with a
sharp edge; near the border many units answer that frame rather than the picture (see
``docs/border-hits.md``). ``min_inside = 0`` makes every position eligible (mining before the policy).

Each layer gets one fixed mask over its output map, so a unit's candidate for an image is the
maximum over eligible positions only, and the streaming top-k stays exact. When no position of a
layer reaches `min_inside` (a field larger than the image), the positions with the largest inside
fraction are eligible, so every layer keeps candidates. The mask lies over the layer's grid of
positions whatever its layout (channels-last maps, a token grid without its class token: what
mining reads). Only an ``exact`` field decides: fc layers and layers whose field is global,
unknown or a ``bound`` (token mixing: attention, Swin's windows — a bound says nothing about how
much padding a unit really reads) use every position.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from ..errors import VisUsageError
from ..features.layout import position_grid
from ..features.receptive import field_of, inside_fraction

__all__ = ["DEFAULT_MIN_INSIDE", "check_min_inside", "eligible_mask", "eligible_masks", "positions_identity"]

#: The default share of a unit's receptive field that must lie inside the image (see docs/border-hits.md).
DEFAULT_MIN_INSIDE = 0.9
_SLACK = 1e-9  # fractions are ratios of integers; compare with a margin far below their spacing


def check_min_inside(value: float) -> float:
    """`min_inside` as a float in [0, 1] (else a usage error)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise VisUsageError(f"`min_inside` must be a number from 0 to 1, got {value!r}") from None
    if not 0.0 <= number <= 1.0:
        raise VisUsageError(f"`min_inside` must be from 0 (every position) to 1 (fields wholly inside the "
                            f"image), got {value}")
    return number


def positions_identity(min_inside: float) -> dict:
    """The manifest's ``positions`` field (part of a run's identity)."""
    return {"min_inside": check_min_inside(min_inside)}


def eligible_mask(entry: Mapping, image_size: int, min_inside: float) -> np.ndarray | None:
    """Boolean ``[H, W]`` mask of the eligible positions of a layer (a manifest layer entry: shape,
    layout and receptive field) over its grid of positions, on a square `image_size` input; None
    when every position is eligible."""
    grid = position_grid(entry)
    if min_inside <= 0 or grid is None or entry.get("rf_size") is None or entry.get("rf", "exact") != "exact":
        return None
    fraction = inside_fraction(field_of(dict(entry)), grid, (image_size, image_size))
    threshold = min(min_inside, float(fraction.max()))
    mask = fraction >= threshold - _SLACK
    return None if mask.all() else mask


def eligible_masks(entries: Mapping[str, Mapping], image_size: int, min_inside: float) -> dict[str, np.ndarray | None]:
    """:func:`eligible_mask` of every layer of a run."""
    return {name: eligible_mask(entry, image_size, min_inside) for name, entry in entries.items()}
