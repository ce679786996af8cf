"""Checks for the numbers a user gives, before anything is allocated: whole numbers must be whole
and in range, real numbers finite and in range (no NaN, no infinity), and every size has an upper
bound derived from a pixel budget.

The budgets catch typos and hostile input (``--size 100000`` would need 120 GB) with a one-line
usage error that names the parameter; they do not promise that the work fits a machine's memory.

- :data:`MAX_PIXELS`: one image a network works on — an optimised image, a model input or crop,
  a training crop (2048², the default ``max_pixels`` of texture synthesis and style transfer).
- :data:`MAX_BATCH_PIXELS`: all the images of one batch together (e.g. 668 images of 224²).
- :data:`MAX_DECODE_PIXELS`: an image decoded or resized from a file before it is cropped.
- :data:`MAX_TOPK_ENTRIES`: the top-k table of a mining run, Σ units × k.
- :func:`max_workers`: data-loading worker processes, max(4, 4 × CPUs) (each is a whole Python
  process with its own copy of torch; thousands exhaust memory before the first batch).
- :data:`MAX_STEPS`: optimisation or training steps of one command (per stage where there are
  several): 100,000 (the presets use at most 1,000; a stylizer trains for a few thousand).
- :data:`MAX_LR`: a learning rate or step size, 1e10 (the largest preset, yosinski4, uses 1e8; float32
  overflows at 3.4e38).
- :data:`MAX_WEIGHT`: a loss weight (content, style, TV, diversity, a layer's weight, the seed
  penalty): 1e6 (the defaults are 0.01–10 on normalised losses; larger ones only overflow).
- :data:`MAX_COUNT`: images one command makes in one go (``vis stylize --noise --count``): 10,000.
- :data:`MAX_TRACE_BYTES`: what tracing the layers of a model may keep (``vis layers --size``):
  1 GiB of activations.
"""
from __future__ import annotations

import math
import numbers
import os
from typing import Any

from .errors import VisUsageError

__all__ = ["MAX_BATCH_PIXELS", "MAX_COUNT", "MAX_DECODE_PIXELS", "MAX_LR", "MAX_PIXELS", "MAX_STEPS",
           "MAX_TOPK_ENTRIES", "MAX_TRACE_BYTES", "MAX_WEIGHT", "batch_pixels", "learning_rate", "max_workers",
           "number", "side", "steps", "weight", "whole", "worker_count"]

MAX_PIXELS = 2048 * 2048
MAX_BATCH_PIXELS = 2 ** 25
MAX_DECODE_PIXELS = 64_000_000
MAX_TOPK_ENTRIES = 2 ** 26
MAX_STEPS = 100_000
MAX_LR = 1e10
MAX_WEIGHT = 1e6
MAX_COUNT = 10_000
MAX_TRACE_BYTES = 2 ** 30


def whole(value: Any, name: str, minimum: int | None = 1, maximum: int | None = None) -> int:
    """`value` as an int in [minimum, maximum] (None: unbounded); anything else names `name`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, numbers.Real) and math.isfinite(value) and float(value).is_integer():
            value = int(value)
        else:
            raise VisUsageError(f"`{name}` must be a whole number, got {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise VisUsageError(f"`{name}` must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise VisUsageError(f"`{name}` must be at most {maximum:,}, got {value:,}")
    return value


def max_workers() -> int:
    """The most worker processes a command starts for loading data: max(4, 4 × this machine's CPUs)."""
    return max(4, 4 * (os.cpu_count() or 1))


def worker_count(value: Any, name: str = "workers") -> int:
    """`value` as a number of worker processes in [0, :func:`max_workers`] (0: load in this process)."""
    value = whole(value, name, 0)
    if value > max_workers():
        raise VisUsageError(f"`{name}` must be at most {max_workers()} (4 × the {os.cpu_count() or 1} CPUs here), "
                            f"got {value:,}")
    return value


def number(value: Any, name: str, minimum: float | None = None, maximum: float | None = None, *,
           positive: bool = False) -> float:
    """`value` as a finite float in [minimum, maximum] (> 0 with `positive`); NaN and ±inf are refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise VisUsageError(f"`{name}` must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise VisUsageError(f"`{name}` must be a finite number, got {value}")
    if positive and value <= 0:
        raise VisUsageError(f"`{name}` must be greater than 0, got {value:g}")
    if minimum is not None and value < minimum:
        raise VisUsageError(f"`{name}` must be at least {minimum:g}, got {value:g}")
    if maximum is not None and value > maximum:
        raise VisUsageError(f"`{name}` must be at most {maximum:g}, got {value:g}")
    return value


def side(value: Any, name: str, max_pixels: int = MAX_PIXELS, minimum: int = 1, raise_with: str | None = None) -> int:
    """An image side in px: a whole number ≥ `minimum` whose square image has at most `max_pixels`
    pixels. `raise_with` names the parameter that raises the budget, if the caller has one."""
    value = whole(value, name, minimum)
    if value * value > max_pixels:
        hint = f"choose a smaller `{name}`" + (f" or raise `{raise_with}`" if raise_with else "")
        raise VisUsageError(f"`{name}` {value:,} means up to {value * value:,} pixels per image, above the limit "
                            f"of {max_pixels:,} ({math.isqrt(max_pixels)}²); {hint}")
    return value


def batch_pixels(count: int, height: int, width: int, name: str, limit: int = MAX_BATCH_PIXELS) -> int:
    """Refuse a batch of `count` images of `height`×`width` above `limit` pixels in all; `name` is
    the parameter that sets the count. Returns `count`."""
    total = count * height * width
    if total > limit:
        raise VisUsageError(f"`{name}` {count:,} × {height}×{width} px is {total:,} pixels in one batch, above the "
                            f"limit of {limit:,}; use a smaller `{name}` or smaller images")
    return count


def steps(value: Any, name: str = "steps", minimum: int = 1) -> int:
    """`value` as a number of steps in [minimum, :data:`MAX_STEPS`]."""
    return whole(value, name, minimum, MAX_STEPS)


def learning_rate(value: Any, name: str = "lr") -> float:
    """`value` as a learning rate in (0, :data:`MAX_LR`]."""
    return number(value, name, maximum=MAX_LR, positive=True)


def weight(value: Any, name: str) -> float:
    """`value` as a loss weight in [0, :data:`MAX_WEIGHT`]."""
    return number(value, name, 0, MAX_WEIGHT)
