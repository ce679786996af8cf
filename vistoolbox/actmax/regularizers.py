"""Yosinski et al. (2015) regularizers, applied to the pixels after each gradient-ascent step.

Each is a small callable ``r(x, grad, step)`` that changes ``x`` (``[N, 3, H, W]`` in
"0–255 minus mean" space) in place: L2 decay, Gaussian blur every few steps, clipping pixels of
small norm, clipping pixels of small contribution. Percentiles are taken per image.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["Blur", "ContribClip", "L2Decay", "NormClip", "all_regularizers", "gaussian_blur", "gaussian_kernel",
           "progress_lr"]


def _below_percentile(values: torch.Tensor, pct: float) -> torch.Tensor:
    """Mask of the entries of each row of `values` ``[N, P]`` strictly below that row's
    `pct`-th percentile (linear interpolation, as numpy's default)."""
    threshold = torch.quantile(values, pct / 100.0, dim=1, keepdim=True)
    return values < threshold


@dataclass(frozen=True)
class L2Decay:
    """``x *= 1 − decay`` every step (a prior towards the mean image)."""

    decay: float

    def __call__(self, x: torch.Tensor, grad: torch.Tensor, step: int) -> None:
        if self.decay > 0:
            x.mul_(1.0 - self.decay)


def gaussian_kernel(sigma: float, truncate: float = 4.0) -> torch.Tensor:
    """1-D normalised Gaussian of standard deviation `sigma`, radius ``round(truncate·sigma)``."""
    radius = max(1, int(truncate * sigma + 0.5))
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return (k / k.sum()).float()


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of each channel with reflected borders."""
    k = gaussian_kernel(sigma).to(x.device, x.dtype)
    r = (k.numel() - 1) // 2
    c = x.shape[1]
    r_eff = min(r, x.shape[-1] - 1, x.shape[-2] - 1)
    if r_eff < r:
        k = k[r - r_eff: r + r_eff + 1]
        k = k / k.sum()
        r = r_eff
    y = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(F.pad(y, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


@dataclass(frozen=True)
class Blur:
    """Gaussian blur of standard deviation `radius` every `every` steps (a smoothness prior)."""

    radius: float
    every: int

    def __call__(self, x: torch.Tensor, grad: torch.Tensor, step: int) -> None:
        if self.radius > 0 and self.every > 0 and step % self.every == 0:
            x.copy_(gaussian_blur(x, self.radius))


@dataclass(frozen=True)
class NormClip:
    """Zero the pixels whose RGB norm is below the `pct`-th percentile (keeps strong pixels only)."""

    pct: float

    def __call__(self, x: torch.Tensor, grad: torch.Tensor, step: int) -> None:
        if self.pct > 0:
            norms = x.norm(dim=1).flatten(1)
            mask = _below_percentile(norms, self.pct).view(x.shape[0], 1, *x.shape[2:])
            x.masked_fill_(mask, 0.0)


@dataclass(frozen=True)
class ContribClip:
    """Zero the pixels whose contribution ``|Σ_c grad·(0 − x)|`` — the linearised change in the
    objective if the pixel were set to the mean — is below the `pct`-th percentile."""

    pct: float

    def __call__(self, x: torch.Tensor, grad: torch.Tensor, step: int) -> None:
        if self.pct > 0:
            contrib = (grad * -x).sum(1).abs().flatten(1)
            mask = _below_percentile(contrib, self.pct).view(x.shape[0], 1, *x.shape[2:])
            x.masked_fill_(mask, 0.0)


def progress_lr(grad: torch.Tensor, desired: float, max_lr: float) -> torch.Tensor:
    """Yosinski's "progress" step size per image: the lr whose linearised gain ``lr·‖grad‖²``
    equals `desired`, capped at `max_lr`. Returns ``[N, 1, 1, 1]``."""
    sq = grad.pow(2).flatten(1).sum(1).clamp_min(1e-30)
    return (desired / sq).clamp(max=max_lr).view(-1, 1, 1, 1)


def all_regularizers(decay: float, blur_radius: float, blur_every: int, norm_pct: float,
                     contrib_pct: float) -> list:
    """The paper's order after each step: decay, blur, contribution clip, norm clip."""
    parts: list = []
    if decay > 0:
        parts.append(L2Decay(decay))
    if blur_radius > 0 and blur_every > 0:
        parts.append(Blur(blur_radius, blur_every))
    if contrib_pct > 0:
        parts.append(ContribClip(contrib_pct))
    if norm_pct > 0:
        parts.append(NormClip(norm_pct))
    return parts


