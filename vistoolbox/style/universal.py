"""Universal style transforms on encoder features: AdaIN (Huang & Belongie 2017) and WCT (Li et al. 2017).

Features are channels-first batches ``[N, C, H, W]`` (or ``[N, C, M]``), as the feature extractor
hands them over; every image of the batch has its own statistics. With ``f_c`` a content image's
features minus their channel mean ``μ_c`` (``C × M``, ``M`` positions) and ``Σ = f fᵀ / M``:

* ``adain``: ``σ_s · (f − μ_c) / σ_c + μ_s`` per channel, ``σ = sqrt(var + ADAIN_EPS)`` (biased var);
* ``wct``: whitening ``ŵ = E_c (Λ_c + WCT_EPS)^-½ E_cᵀ f_c``, colouring ``E_s Λ_s^½ E_sᵀ ŵ + μ_s``,
  the eigen-decompositions ``Σ = E Λ Eᵀ`` in float64 (``Λ_s`` clamped at 0). The output's
  covariance is ``Σ_s`` up to a relative ``WCT_EPS / λ_c`` on each content eigenvalue.

``alpha`` blends the transformed features with the content's: ``alpha · t + (1 − alpha) · f``.
Statistics are :class:`FeatureStats` (mean and covariance), computable once and reused — over
several tiles (:meth:`FeatureStats.merge`), several images, or only the positions a mask selects.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import VisUsageError
from ..limits import number

__all__ = ["ADAIN_EPS", "FeatureStats", "WCT_EPS", "adain", "adain_apply", "coloring", "feature_stats",
           "whitening", "wct", "wct_apply"]

#: added to each channel's variance before the square root (AdaIN), as in :func:`~vistoolbox.style.stats.mean_std`
ADAIN_EPS = 1e-5
#: added to every eigenvalue of the content covariance before the inverse square root (WCT)
WCT_EPS = 1e-5


@dataclass
class FeatureStats:
    """Channel statistics of features, float64: ``count`` positions, ``total`` Σf ``[N, C]``,
    ``outer`` Σffᵀ ``[N, C, C]`` (sums, so tiles merge exactly)."""

    count: torch.Tensor
    total: torch.Tensor
    outer: torch.Tensor

    @property
    def mean(self) -> torch.Tensor:
        return self.total / self.count[:, None]

    @property
    def cov(self) -> torch.Tensor:
        """Biased covariance ``Σ(f − μ)(f − μ)ᵀ / M`` ``[N, C, C]``."""
        mean = self.mean
        return self.outer / self.count[:, None, None] - mean[:, :, None] * mean[:, None, :]

    @property
    def std(self) -> torch.Tensor:
        return (torch.diagonal(self.cov, dim1=1, dim2=2).clamp_min(0) + ADAIN_EPS).sqrt()

    def merge(self, other: "FeatureStats") -> "FeatureStats":
        return FeatureStats(self.count + other.count, self.total + other.total, self.outer + other.outer)

    def pooled(self) -> "FeatureStats":
        """One statistic over every image of the batch (``N = 1``)."""
        return FeatureStats(self.count.sum(0, keepdim=True), self.total.sum(0, keepdim=True),
                            self.outer.sum(0, keepdim=True))


def _flat(features: torch.Tensor) -> torch.Tensor:
    if features.dim() < 3:
        raise VisUsageError(f"style transforms take channels-first features [N, C, H, W], got {list(features.shape)}")
    return features.reshape(*features.shape[:2], -1)


def feature_stats(features: torch.Tensor, weight: torch.Tensor | None = None) -> FeatureStats:
    """Statistics of ``[N, C, H, W]`` features; `weight` ``[N, 1, H, W]`` (or ``[N, H, W]``) counts each
    position that much (a mask: only the positions it selects)."""
    f = _flat(features).double()
    if weight is None:
        w = torch.ones(f.shape[0], 1, f.shape[2], dtype=torch.float64, device=f.device)
    else:
        w = weight.reshape(f.shape[0], 1, -1).double().to(f.device)
    fw = f * w
    return FeatureStats(w.sum((1, 2)), fw.sum(2), fw @ f.transpose(1, 2))


def _sym_power(cov: torch.Tensor, power: float, eps: float) -> torch.Tensor:
    values, vectors = torch.linalg.eigh(cov)
    values = (values.clamp_min(0) + eps).pow(power)
    return vectors @ torch.diag_embed(values) @ vectors.transpose(1, 2)


def whitening(stats: FeatureStats, eps: float = WCT_EPS) -> torch.Tensor:
    """``E_c (Λ_c + eps)^-½ E_cᵀ`` ``[N, C, C]`` float64."""
    return _sym_power(stats.cov, -0.5, eps)


def coloring(stats: FeatureStats) -> torch.Tensor:
    """``E_s Λ_s^½ E_sᵀ`` ``[N, C, C]`` float64 (negative round-off eigenvalues clamped to 0)."""
    return _sym_power(stats.cov, 0.5, 0.0)


def _check_alpha(alpha: float) -> float:
    if not 0.0 <= number(alpha, "alpha") <= 1.0:
        raise VisUsageError(f"`alpha` must be between 0 and 1 (0 = the content, 1 = the style), got {alpha}")
    return float(alpha)


def _blend(out: torch.Tensor, features: torch.Tensor, alpha: float) -> torch.Tensor:
    out = out.reshape(features.shape).to(features.dtype)
    return out if alpha == 1.0 else alpha * out + (1 - alpha) * features


def _batched(stats: FeatureStats, n: int, what: str) -> FeatureStats:
    if stats.count.shape[0] == n:
        return stats
    if stats.count.shape[0] == 1:
        return FeatureStats(stats.count.expand(n), stats.total.expand(n, -1), stats.outer.expand(n, -1, -1))
    raise VisUsageError(f"{what} statistics are for {stats.count.shape[0]} images, the content batch has {n}")


def adain_apply(features: torch.Tensor, content: FeatureStats, style: FeatureStats, alpha: float = 1.0) -> torch.Tensor:
    """AdaIN of `features` with given content and style statistics (one per image, or one for all)."""
    alpha = _check_alpha(alpha)
    n = features.shape[0]
    content, style = _batched(content, n, "content"), _batched(style, n, "style")
    f = _flat(features).double()
    out = (f - content.mean[..., None]) * (style.std / content.std)[..., None] + style.mean[..., None]
    return _blend(out, features, alpha)


def wct_apply(features: torch.Tensor, content: FeatureStats, style: FeatureStats, alpha: float = 1.0,
              eps: float = WCT_EPS) -> torch.Tensor:
    """WCT of `features` with given content and style statistics (one per image, or one for all)."""
    alpha = _check_alpha(alpha)
    n = features.shape[0]
    content, style = _batched(content, n, "content"), _batched(style, n, "style")
    f = _flat(features).double()
    transform = coloring(style) @ whitening(content, eps)
    out = transform @ (f - content.mean[..., None]) + style.mean[..., None]
    return _blend(out, features, alpha)


def adain(content_feats: torch.Tensor, style_feats: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """Content features with each channel's mean and std replaced by the style's (per image of the batch;
    a style batch of one serves every content image)."""
    return adain_apply(content_feats, feature_stats(content_feats), feature_stats(style_feats), alpha)


def wct(content_feats: torch.Tensor, style_feats: torch.Tensor, alpha: float = 1.0, eps: float = WCT_EPS
        ) -> torch.Tensor:
    """Whitened content features coloured with the style's covariance and mean (per image of the batch;
    a style batch of one serves every content image); `alpha` blends with the content features."""
    return wct_apply(content_feats, feature_stats(content_feats), feature_stats(style_feats), alpha, eps)
