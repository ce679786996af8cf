"""The CAM methods, each written as its per-unit contributions ``C [N, K, h, w]``: the map before its
ReLU is ``Σ_k C_k`` and the map is ``ReLU(Σ_k C_k)``. That form is also the decomposition of
"the units behind the map": at a place (y, x) unit k contributes ``C_k(y, x)``.

``A`` are the layer's activations, ``G = d score / d A`` (``[N, K, h, w]``, channels first):

* ``gradcam`` (Selvaraju et al. 2017): ``C_k = α_k A_k``, ``α_k`` = the mean of ``G_k`` over positions;
* ``gradcam++`` (Chattopadhay et al. 2018): ``α_k = Σ_ij relu(G_kij) a_kij``,
  ``a = G² / (2 G² + (Σ_ij A_kij) G³ + 1e-6)`` (0 where ``G = 0``);
* ``xgradcam`` (Fu et al. 2020): ``α_k = Σ_ij G_kij A_kij / (Σ_ij A_kij + 1e-7)``;
* ``hirescam`` (Draelos & Carin 2020): ``C_k = G_k ⊙ A_k`` (element-wise, no averaging);
* ``layercam`` (Jiang et al. 2021): ``C_k = relu(G_k) ⊙ A_k``;
* ``eigencam`` (Muhammad & Yeasin 2020): the first principal component of the activations over the
  positions, ``C_k = v_k (A_k − μ_k)`` (``v`` the component, signed so that ``Σ v_k ≥ 0``; ``μ_k``
  the unit's mean); it ignores the target;
* ``scorecam`` (Wang et al. 2020): ``α = softmax_k(s_k)``, ``s_k`` the target's score on the input
  masked by unit k's map (bilinearly upsampled, corners aligned, min-max scaled to 0–1);
* ``ablationcam`` (Desai & Ramaswamy 2020): ``α_k = (s − s_k) / s``, ``s_k`` the score with unit k
  zeroed.

Smoothing: ``eigen`` replaces ``C`` by the first principal component of ``C`` itself (its own
decomposition, ``v_k (C_k − μ_k)``; not for eigencam, which is one already); ``aug`` averages the maps
of six views of the input (left-right flip × brightness 0.9, 1, 1.1 of the normalised input, maps
flipped back), which has no per-unit decomposition.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import VisUsageError

__all__ = ["METHODS", "Method", "SMOOTHINGS", "check_method", "contributions", "principal"]


@dataclass(frozen=True)
class Method:
    """`gradients`: needs ``G``; `perturbation`: the extra passes it runs (``mask``: ScoreCAM's masked
    inputs, ``ablate``: AblationCAM's zeroed units); `decomposition`: what ``C_k(y, x)`` is."""

    name: str
    gradients: bool
    perturbation: str | None
    decomposition: str


METHODS = {m.name: m for m in (
    Method("gradcam", True, None, "alpha_k * A_k(y, x), alpha_k = mean over positions of dscore/dA_k"),
    Method("gradcam++", True, None, "alpha_k * A_k(y, x), alpha_k = sum_ij relu(G_kij) a_kij (Grad-CAM++ weights)"),
    Method("xgradcam", True, None, "alpha_k * A_k(y, x), alpha_k = sum_ij G_kij A_kij / sum_ij A_kij"),
    Method("hirescam", True, None, "G_k(y, x) * A_k(y, x)"),
    Method("layercam", True, None, "relu(G_k(y, x)) * A_k(y, x)"),
    Method("eigencam", False, None, "v_k * (A_k(y, x) - mean_k), v the first principal component"),
    Method("scorecam", False, "mask", "alpha_k * A_k(y, x), alpha = softmax over units of the masked scores"),
    Method("ablationcam", False, "ablate", "alpha_k * A_k(y, x), alpha_k = (s - s_k) / s, s_k with unit k zeroed"),
)}

SMOOTHINGS = ("aug", "eigen")


def check_method(method: str, smooth: str | None) -> "Method":
    """The :class:`Method` called `method`; an unknown one or a smoothing it does not allow is a usage
    error naming `method` / `smooth`."""
    if method not in METHODS:
        raise VisUsageError(f"unknown `method` {method!r}; valid: {', '.join(METHODS)}")
    if smooth is not None and smooth not in SMOOTHINGS:
        raise VisUsageError(f"unknown `smooth` {smooth!r}; valid: {', '.join(SMOOTHINGS)}")
    if smooth == "eigen" and method == "eigencam":
        raise VisUsageError("`smooth` eigen takes a principal component, and eigencam is one already; use aug")
    return METHODS[method]


def principal(values: torch.Tensor) -> torch.Tensor:
    """``[N, K, h, w]`` → ``v_k (X_k − μ_k)`` per image: the first principal component of the units over
    the positions, as per-unit contributions (their sum is the projection), signed so ``Σ_k v_k ≥ 0``."""
    n, k, h, w = values.shape
    x = values.flatten(2).double()  # [N, K, hw]
    centred = x - x.mean(2, keepdim=True)
    _, _, vh = torch.linalg.svd(centred.transpose(1, 2), full_matrices=False)  # rows of vh: components over K
    v = vh[:, 0, :]
    v = torch.where(v.sum(1, keepdim=True) < 0, -v, v)
    return (v[:, :, None] * centred).reshape(n, k, h, w).to(values.dtype)


def contributions(method: Method, activations: torch.Tensor, gradients: torch.Tensor | None = None,
                  weights: torch.Tensor | None = None) -> torch.Tensor:
    """``C [N, K, h, w]`` of `method` from the activations, their gradients (gradient methods) or the
    per-unit `weights` ``[N, K]`` (scorecam, ablationcam)."""
    a = activations
    if method.name == "eigencam":
        return principal(a)
    if method.perturbation is not None:
        assert weights is not None
        return weights[:, :, None, None].to(a.dtype) * a
    assert gradients is not None
    g = gradients
    if method.name == "gradcam":
        return g.mean((2, 3), keepdim=True) * a
    if method.name == "gradcam++":
        g2 = g.pow(2)
        a_ij = g2 / (2 * g2 + a.sum((2, 3), keepdim=True) * g.pow(3) + 1e-6)
        a_ij = torch.where(g != 0, a_ij, torch.zeros_like(a_ij))
        return (g.clamp_min(0) * a_ij).sum((2, 3), keepdim=True) * a
    if method.name == "xgradcam":
        return (g * a).sum((2, 3), keepdim=True) / (a.sum((2, 3), keepdim=True) + 1e-7) * a
    if method.name == "hirescam":
        return g * a
    if method.name == "layercam":
        return g.clamp_min(0) * a
    raise AssertionError(method.name)
