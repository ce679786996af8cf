"""Reading the arguments of a torch op the way torch does: positional or keyword, ints or pairs."""
from __future__ import annotations

from typing import Any, Iterable, Sequence

import torch

__all__ = ["arg", "as_list", "pair", "tensors_in"]


def pair(value: Any) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    value = tuple(value)
    return (int(value[0]), int(value[-1])) if value else (1, 1)


def arg(args: Sequence[Any], kwargs: dict, index: int | None, name: str, default: Any = None) -> Any:
    if name in kwargs:
        return kwargs[name]
    return args[index] if index is not None and len(args) > index else default


def as_list(value: Any) -> list:
    return [value] if isinstance(value, int) else list(value)


def tensors_in(obj: Any) -> Iterable[torch.Tensor]:
    """Every tensor inside nested lists/tuples/dicts."""
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            yield from tensors_in(item)
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from tensors_in(item)
