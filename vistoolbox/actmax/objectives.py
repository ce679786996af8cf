"""Objectives: what to maximise, as small composable classes.

An objective maps the captured activations ``{layer: tensor [N, ...]}`` to one score per batch
element ``[N]``. Objectives add (``a + b``), scale (``0.5 * a``) and negate (``-a``); the optimiser
maximises the sum over the batch. Batch element ``i`` of a :class:`Channel` / :class:`Neuron`
optimises ``units[i]``, so a batch of units shares one forward pass.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

__all__ = ["Channel", "DeepDream", "Diversity", "Neuron", "Objective", "Scaled", "Sum"]


class Objective:
    """Base class: ``objective(acts) -> [N]`` scores; ``layers`` lists the layers it reads."""

    layers: tuple[str, ...] = ()

    def __call__(self, acts: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def __add__(self, other: "Objective") -> "Objective":
        return Sum((self, other))

    def __mul__(self, weight: float) -> "Objective":
        return Scaled(self, float(weight))

    __rmul__ = __mul__

    def __neg__(self) -> "Objective":
        return Scaled(self, -1.0)

    def __sub__(self, other: "Objective") -> "Objective":
        return self + (-other)


@dataclass(frozen=True)
class Sum(Objective):
    parts: tuple[Objective, ...]

    @property
    def layers(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(dict.fromkeys(l for p in self.parts for l in p.layers))

    def __call__(self, acts: dict[str, torch.Tensor]) -> torch.Tensor:
        total = self.parts[0](acts)
        for part in self.parts[1:]:
            total = total + part(acts)
        return total

    def describe(self) -> str:
        return " + ".join(p.describe() for p in self.parts)


@dataclass(frozen=True)
class Scaled(Objective):
    inner: Objective
    weight: float

    @property
    def layers(self) -> tuple[str, ...]:  # type: ignore[override]
        return self.inner.layers

    def __call__(self, acts: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.weight * self.inner(acts)

    def describe(self) -> str:
        return f"-({self.inner.describe()})" if self.weight == -1 else f"{self.weight:g}*({self.inner.describe()})"


def _index(units: Sequence[int], n: int, device: torch.device) -> torch.Tensor:
    if len(units) not in (1, n):
        raise ValueError(f"{len(units)} units for a batch of {n}")
    return torch.as_tensor(list(units) * (n if len(units) == 1 else 1), device=device)


@dataclass(frozen=True)
class Channel(Objective):
    """Mean over space of channel ``units[i]`` (element i); for a 2-D (fc) output, unit ``units[i]``."""

    layer: str
    units: tuple[int, ...]

    @property
    def layers(self) -> tuple[str, ...]:  # type: ignore[override]
        return (self.layer,)

    def __call__(self, acts: dict[str, torch.Tensor]) -> torch.Tensor:
        a = acts[self.layer]
        idx = _index(self.units, a.shape[0], a.device)
        picked = a[torch.arange(a.shape[0], device=a.device), idx]
        return picked.flatten(1).mean(1) if picked.dim() > 1 else picked

    def describe(self) -> str:
        return f"channel({self.layer}, {_units_text(self.units)})"


@dataclass(frozen=True)
class Neuron(Objective):
    """One spatial position of channel ``units[i]``: ``(y, x)``, or the centre when not given."""

    layer: str
    units: tuple[int, ...]
    y: int | None = None
    x: int | None = None

    @property
    def layers(self) -> tuple[str, ...]:  # type: ignore[override]
        return (self.layer,)

    def position(self, height: int, width: int) -> tuple[int, int]:
        """The position used for a map of this size (centre: ``(H // 2, W // 2)``)."""
        return (height // 2 if self.y is None else self.y, width // 2 if self.x is None else self.x)

    def __call__(self, acts: dict[str, torch.Tensor]) -> torch.Tensor:
        a = acts[self.layer]
        y, x = self.position(a.shape[-2], a.shape[-1])
        idx = _index(self.units, a.shape[0], a.device)
        return a[torch.arange(a.shape[0], device=a.device), idx, y, x]

    def describe(self) -> str:
        where = "centre" if self.y is None else f"{self.y},{self.x}"
        return f"neuron({self.layer}, {_units_text(self.units)}, {where})"


@dataclass(frozen=True)
class DeepDream(Objective):
    """Amplify a whole layer: the mean of its squared activations."""

    layer: str

    @property
    def layers(self) -> tuple[str, ...]:  # type: ignore[override]
        return (self.layer,)

    def __call__(self, acts: dict[str, torch.Tensor]) -> torch.Tensor:
        return acts[self.layer].pow(2).flatten(1).mean(1)

    def describe(self) -> str:
        return f"deepdream({self.layer})"


@dataclass(frozen=True)
class Diversity(Objective):
    """Push a batch apart: minus the mean cosine similarity of each element's Gram matrix
    (channel × channel, over space) with every other element's (Lucid's diversity term)."""

    layer: str

    @property
    def layers(self) -> tuple[str, ...]:  # type: ignore[override]
        return (self.layer,)

    def __call__(self, acts: dict[str, torch.Tensor]) -> torch.Tensor:
        a = acts[self.layer]
        n = a.shape[0]
        if n < 2:
            return a.new_zeros(n)
        flat = a.flatten(2)
        gram = torch.bmm(flat, flat.transpose(1, 2)).flatten(1)
        unit = gram / gram.norm(dim=1, keepdim=True).clamp_min(1e-12)
        sim = unit @ unit.T
        off = sim.sum(1) - sim.diagonal()
        return -off / (n - 1)

    def describe(self) -> str:
        return f"diversity({self.layer})"


def _units_text(units: Sequence[int]) -> str:
    units = list(units)
    if len(units) > 2 and units == list(range(units[0], units[-1] + 1)):
        return f"{units[0]}-{units[-1]}"
    return ",".join(map(str, units))
