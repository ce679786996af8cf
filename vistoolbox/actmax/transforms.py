"""Transformation robustness: small random pads, shifts, scalings and rotations applied to the
image before every step, so the optimiser cannot rely on pixel-exact patterns.

Each transform is a small callable ``t(x, generator) -> x`` on a 0–1 batch ``[N, 3, H, W]``; the
whole batch gets the same random draw. :class:`Compose` chains them. Randomness comes only from
the generator passed in, so a seed fixes the sequence.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol, Sequence

import torch
import torch.nn.functional as F

__all__ = ["Compose", "Jitter", "Pad", "ScaleRotate", "Transform", "distill_transforms", "lucid_transforms",
           "robustness"]


class Transform(Protocol):
    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor: ...


def _choice(values: Sequence[float], generator: torch.Generator) -> float:
    return values[int(torch.randint(len(values), (1,), generator=generator))]


@dataclass(frozen=True)
class Pad:
    """Pad every side by `width` pixels with a constant `value` (0.5 = mid grey)."""

    width: int
    value: float = 0.5

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.width <= 0:
            return x
        return F.pad(x, (self.width,) * 4, mode="constant", value=self.value)


@dataclass(frozen=True)
class Jitter:
    """Crop a random window `d` pixels smaller in each dimension (a random shift of up to d−1 px)."""

    d: int

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.d <= 1:
            return x
        dy, dx = (int(v) for v in torch.randint(self.d, (2,), generator=generator))
        h, w = x.shape[-2:]
        return x[..., dy:h - self.d + dy, dx:w - self.d + dx]


@dataclass(frozen=True)
class ScaleRotate:
    """Random scale (output size × s) and rotation (degrees) in one bilinear resampling.

    One ``grid_sample`` does both, instead of an interpolation followed by a rotation.
    Out-of-image samples take the border colour.
    """

    scales: tuple[float, ...] = (1.0,)
    angles: tuple[float, ...] = (0.0,)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        s = _choice(self.scales, generator)
        a = _choice(self.angles, generator)
        if s == 1.0 and a == 0.0:
            return x
        n, c, h, w = x.shape
        out_h, out_w = max(1, round(h * s)), max(1, round(w * s))
        rad = math.radians(a)
        cos, sin = math.cos(rad), math.sin(rad)
        theta = torch.tensor([[cos, -sin * h / w, 0.0], [sin * w / h, cos, 0.0]], dtype=x.dtype,
                             device=x.device)
        grid = F.affine_grid(theta.expand(n, 2, 3), [n, c, out_h, out_w], align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


@dataclass(frozen=True)
class Compose:
    """Apply transforms in order."""

    transforms: tuple = field(default_factory=tuple)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        for t in self.transforms:
            x = t(x, generator)
        return x


def lucid_transforms() -> Compose:
    """Lucid's/Lucent's standard set: pad 12, jitter 8, scale 0.90–1.10, rotate −10…10°, jitter 4."""
    return robustness(pad=12, jitter=8, scales=tuple(1 + (i - 5) / 50 for i in range(11)),
                      angles=tuple(float(a) for a in range(-10, 11)) + (0.0,) * 5, jitter2=4)


def distill_transforms() -> Compose:
    """The Distill article's milder set: pad 16, jitter 16, scale {1, .975, 1.025, .95, 1.05},
    rotate −5…5°, jitter 8."""
    return robustness(pad=16, jitter=16, scales=(1.0, 0.975, 1.025, 0.95, 1.05),
                      angles=tuple(float(a) for a in range(-5, 6)), jitter2=8)


def robustness(pad: int, jitter: int, scales: tuple[float, ...], angles: tuple[float, ...],
               jitter2: int) -> Compose:
    """pad → jitter → scale+rotate → jitter, skipping parts that are switched off."""
    parts: list = []
    if pad > 0:
        parts.append(Pad(pad))
    if jitter > 1:
        parts.append(Jitter(jitter))
    if scales != (1.0,) or angles != (0.0,):
        parts.append(ScaleRotate(tuple(scales), tuple(angles)))
    if jitter2 > 1:
        parts.append(Jitter(jitter2))
    return Compose(tuple(parts))
