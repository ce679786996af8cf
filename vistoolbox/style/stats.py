"""Style statistics of a feature map and the distance between two of them.

Every statistic works on features ``F`` shaped ``[N, C, H, W]`` (``M = H·W`` positions) and has
two halves: ``target(F)`` summarises a style image once, ``loss(F, target)`` compares the
image being optimised with that summary. Targets of several style images are blended linearly
(``blend``), which for these quadratic losses is the same as blending the losses themselves.

* :class:`Gram` (default): ``G = F Fᵀ / M`` — the channel co-activation matrix divided by the
  number of positions (not by ``C``). ``loss = mean((G − Ĝ)²) = Σ(G − Ĝ)² / C²``.
  Gatys et al. (2015) use ``Σ(G − Ĝ)² / (4 C² M²)`` with an unnormalised Gram: the same up to the
  constant 1/4 once ``G`` carries the 1/M.
* :class:`MeanStd`: per-channel mean ``μ`` and standard deviation ``σ`` over positions (AdaIN's
  statistic). ``loss = mean((μ − μ̂)²) + mean((σ − σ̂)²)``, means over ``C``.
* :class:`Histogram`: the per-channel distribution of activations, stored as its quantile
  function (the sorted values). ``loss = mean((sort(F_c) − Q̂_c)²)`` over channels and positions,
  with ``Q̂`` linearly resampled to ``M`` points when the sizes differ. This is the squared
  1-D Wasserstein-2 distance per channel; its gradient equals that of Risser et al.'s (2017)
  "match the histogram, then take the MSE to the matched features".
"""
from __future__ import annotations

from typing import Sequence

import torch

__all__ = ["get_statistic", "gram", "Gram", "Histogram", "mean_std", "MeanStd", "resample_sorted", "Statistic",
           "STATISTICS"]


class Statistic:
    """A style statistic: ``target`` once per style image, ``loss`` every step."""

    name = "statistic"

    def target(self, features: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def loss(self, features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def blend(self, targets: Sequence[torch.Tensor], weights: Sequence[float]) -> torch.Tensor:
        """Weighted sum of targets (weights are used as given; callers normalise them)."""
        return sum(w * t for w, t in zip(weights, targets))  # type: ignore[return-value]

    def magnitude(self, target: torch.Tensor) -> torch.Tensor:
        """Mean square of a target: the scale :class:`~vistoolbox.style.losses.StyleLoss` divides by."""
        return target.pow(2).mean()


def gram(features: torch.Tensor) -> torch.Tensor:
    """``[N, C, H, W]`` → ``[N, C, C]`` Gram matrices ``F Fᵀ / (H·W)``."""
    n, c, h, w = features.shape
    if c > 1 and features.is_contiguous(memory_format=torch.channels_last):
        flat = features.permute(0, 2, 3, 1).reshape(n, h * w, c)  # a view for NHWC features
        return torch.bmm(flat.transpose(1, 2), flat) / (h * w)
    flat = features.reshape(n, c, h * w)
    return torch.bmm(flat, flat.transpose(1, 2)) / (h * w)


class Gram(Statistic):
    """Gram matrix ``F Fᵀ / M``; loss ``mean((G − Ĝ)²)`` (see module doc)."""

    name = "gram"

    def target(self, features: torch.Tensor) -> torch.Tensor:
        return gram(features).mean(0, keepdim=True)

    def loss(self, features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (gram(features) - target).pow(2).mean()


def mean_std(features: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """``[N, C, H, W]`` → ``[N, 2, C]``: per-channel mean and (biased) std over positions."""
    flat = features.flatten(2)
    mean = flat.mean(2)
    std = (flat.var(2, unbiased=False) + eps).sqrt()
    return torch.stack([mean, std], 1)


class MeanStd(Statistic):
    """Per-channel mean and standard deviation; loss ``mean((μ − μ̂)²) + mean((σ − σ̂)²)``."""

    name = "mean_std"

    def target(self, features: torch.Tensor) -> torch.Tensor:
        return mean_std(features).mean(0, keepdim=True)

    def loss(self, features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (mean_std(features) - target).pow(2).mean(2).sum(1).mean()


def resample_sorted(values: torch.Tensor, count: int) -> torch.Tensor:
    """Linearly resample sorted values ``[..., K]`` (a quantile function) to ``count`` points."""
    k = values.shape[-1]
    if k == count:
        return values
    pos = torch.linspace(0, k - 1, count, device=values.device, dtype=values.dtype)
    lo = pos.floor().long().clamp(max=k - 1)
    hi = (lo + 1).clamp(max=k - 1)
    frac = pos - lo.to(values.dtype)
    return values[..., lo] * (1 - frac) + values[..., hi] * frac


class Histogram(Statistic):
    """Per-channel activation histogram as a quantile function; loss = squared W2 per channel."""

    name = "histogram"

    def target(self, features: torch.Tensor) -> torch.Tensor:
        n, c = features.shape[:2]
        # one distribution per channel over all images and positions: [1, C, N·M]
        pooled = features.transpose(0, 1).reshape(1, c, -1)
        return pooled.sort(-1).values

    def blend(self, targets: Sequence[torch.Tensor], weights: Sequence[float]) -> torch.Tensor:
        # the W2 barycentre of 1-D distributions is the weighted mean of their quantile functions
        count = max(t.shape[-1] for t in targets)
        return sum(w * resample_sorted(t, count) for w, t in zip(weights, targets))  # type: ignore[return-value]

    def loss(self, features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        current = features.flatten(2).sort(-1).values
        return (current - resample_sorted(target, current.shape[-1])).pow(2).mean()


STATISTICS: dict[str, type[Statistic]] = {"gram": Gram, "mean_std": MeanStd, "histogram": Histogram}


def get_statistic(name: str | Statistic) -> Statistic:
    """A statistic by name (``gram``, ``mean_std``, ``histogram``); unknown names raise with the valid ones."""
    if isinstance(name, Statistic):
        return name
    from ..errors import unknown

    if name not in STATISTICS:
        raise unknown("style statistic", name, list(STATISTICS))
    return STATISTICS[name]()
