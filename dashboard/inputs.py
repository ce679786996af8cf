"""Server-side checks of what the browser sends to a callback. A page's min, max and options are
hints for people; a forged ``/_dash-update-component`` request can send anything (a million
steps, a string for a channel, a unit that does not exist). Each check returns the value in its
proper type, or raises a one-line :class:`~vistoolbox.errors.VisUsageError` naming the control,
which the callback shows as its message."""
from __future__ import annotations

import re
from typing import Any, Iterable

from vistoolbox.errors import VisError, VisUsageError
from vistoolbox.limits import number, whole

from .context import Context

__all__ = ["count", "image_keys", "image_list", "layers", "MAX_IMAGES", "one_of", "real", "selection", "subset"]

_KEY = re.compile(r"^[0-9a-f]{8,64}$")
#: Images one request may name or upload (a picker's choices; the files of one multiple upload),
#: and the most a job takes: each costs a decode and a PNG encode (~0.2 s), so 16 bound a request
#: to a few seconds.
MAX_IMAGES = 16


def count(value: Any, name: str, low: int, high: int, default: int | None = None) -> int:
    """A whole number in [low, high] (`default` when the field is empty)."""
    if value is None and default is not None:
        return default
    value = whole(value, name, None)
    if not low <= value <= high:
        raise VisUsageError(f"`{name}` must be between {low:,} and {high:,}, got {value:,}")
    return value


def real(value: Any, name: str, low: float | None = None, high: float | None = None,
         default: float | None = None) -> float:
    """A finite number in [low, high] (`default` when the field is empty)."""
    if value is None and default is not None:
        return default
    return number(value, name, low, high)


def one_of(value: Any, name: str, choices: Iterable[str], default: str | None = None) -> str:
    """One of `choices` (`default` when empty)."""
    choices = list(choices)
    if value is None and default is not None:
        return default
    if not isinstance(value, str) or value not in choices:
        raise VisUsageError(f"`{name}` must be one of {', '.join(choices[:12])}{' …' if len(choices) > 12 else ''}; "
                            f"got {str(value)[:40]!r}")
    return value


def subset(values: Any, name: str, choices: Iterable[str]) -> list[str]:
    """A list of distinct names, each one of `choices` (empty when nothing is chosen)."""
    if values is None:
        return []
    if not isinstance(values, list):
        raise VisUsageError(f"`{name}` must be a list of names, got {type(values).__name__}")
    allowed = set(choices)
    bad = [v for v in values if not isinstance(v, str) or v not in allowed]
    if bad:
        raise VisUsageError(f"`{name}` has {str(bad[0])[:40]!r}, which is not one of the choices")
    return list(dict.fromkeys(values))


def layers(ctx: Context, values: Any, name: str, choices: Iterable[str]) -> list[str]:
    """A list of the model's layers, each (by name or alias) one of `choices` → their names, distinct."""
    if values is None:
        return []
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise VisUsageError(f"`{name}` must be a list of layer names")
    allowed, found = set(choices), []
    for value in values:
        try:
            layer = ctx.model.resolve(value)
        except VisError:
            layer = None
        if layer not in allowed:
            raise VisUsageError(f"`{name}` has {value[:40]!r}, which is not one of the choices")
        found.append(layer)
    return list(dict.fromkeys(found))


def image_list(values: Any, what: str, limit: int = MAX_IMAGES) -> list[str]:
    """One string or a list of at most `limit` strings → a list (empty when nothing is sent); `what`
    names them in the message (``images`` a picker's choices, ``uploads`` an upload's files)."""
    if values is None or values == "":
        return []
    items = values if isinstance(values, list) else [values]
    if not all(isinstance(v, str) for v in items):
        raise VisUsageError(f"the {what} sent are not names or files")
    if len(items) > limit:
        raise VisUsageError(f"at most {limit} {what} at once, got {len(items):,}")
    return items


def image_keys(store: Any, limit: int = MAX_IMAGES) -> list[str]:
    """The cached-image keys of a picker store ``{"keys": [hex, …]}`` (at most `limit`)."""
    keys = store.get("keys") if isinstance(store, dict) else None
    if not keys:
        return []
    if not isinstance(keys, list) or len(keys) > limit or not all(isinstance(k, str) and _KEY.match(k) for k in keys):
        raise VisUsageError("the chosen images are not images this dashboard stored; choose them again")
    return keys


def selection(ctx: Context, value: Any) -> dict[str, Any]:
    """A Units selection ``{"run", "layer", "unit"}`` that exists: a run index, a layer the run mined
    (by name or alias, returned as given) and a unit of that layer."""
    if not isinstance(value, dict):
        raise VisUsageError("no unit is selected")
    index = whole(value.get("run"), "run", 0, len(ctx.runs) - 1) if ctx.runs else None
    if index is None:
        raise VisUsageError("no run is open")
    run = ctx.runs[index]
    layer = value.get("layer")
    if not isinstance(layer, str):
        raise VisUsageError(f"`layer` must be a layer name, got {str(layer)[:40]!r}")
    unit = whole(value.get("unit"), "unit", 0, run.units(run.resolve(layer)) - 1)
    return {**value, "run": index, "layer": layer, "unit": unit}
