"""The units behind a map: at a place (y, x) of the map, the layer's units ranked by their
contribution ``C_k(y, x)`` (:mod:`.methods`), whose sum over all units is the map's value there
before its ReLU; with a mining run, each unit's top-9 montage and optimised image."""
from __future__ import annotations

from typing import Any

import torch

from ..errors import VisUsageError
from ..rundir import Run

__all__ = ["check_place", "parse_at", "peak", "units_behind"]


def peak(values: torch.Tensor) -> tuple[int, int]:
    """(y, x) of the largest value of ``[h, w]`` (the first in row-major order on ties)."""
    index = int(values.flatten().argmax())
    return divmod(index, values.shape[1])


def parse_at(text: str | None) -> tuple[int, int] | None:
    """``"Y,X"`` → (y, x) (None stays None); anything else is a usage error naming `at`."""
    if text is None:
        return None
    try:
        y, x = (int(part) for part in text.split(","))
    except ValueError:
        raise VisUsageError(f"cannot read `at` {text!r}; use Y,X on the map, e.g. 3,5") from None
    return y, x


def check_place(at: tuple[int, int], size: tuple[int, int]) -> tuple[int, int]:
    """`at` (y, x) inside a map of `size` (h, w), else a usage error naming `at`."""
    y, x = at
    h, w = size
    if not (0 <= y < h and 0 <= x < w):
        raise VisUsageError(f"`at` {y},{x} is outside the map, which is {h}x{w}: y 0..{h - 1}, x 0..{w - 1}")
    return int(y), int(x)


def units_behind(contributions: torch.Tensor, place: tuple[int, int], top: int = 10, run: Run | None = None,
                 layer: str | None = None) -> dict[str, Any]:
    """For one image's contributions ``[K, h, w]`` at `place`: ``y``, ``x``, ``pre_relu`` (the sum over
    every unit), ``value`` (after the ReLU) and ``units``, the `top` largest contributions (unit,
    contribution; with `run`, the unit's ``montage`` and ``optimised`` image paths where they exist)."""
    y, x = place
    here = contributions[:, y, x].double()
    values, order = here.sort(descending=True, stable=True)
    units = []
    for unit, value in zip(order[:top].tolist(), values[:top].tolist()):
        row: dict[str, Any] = {"unit": unit, "contribution": value}
        if run is not None and layer is not None:
            montage, optimised = run.patch(layer, unit), run.maximized(layer, unit)
            row["montage"] = str(montage) if montage.is_file() else None
            row["optimised"] = str(optimised) if optimised.is_file() else None
        units.append(row)
    total = float(here.sum())
    return {"y": y, "x": x, "pre_relu": total, "value": max(total, 0.0), "units": units}
