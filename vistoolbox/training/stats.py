"""Per-unit statistics of a watched layer: what the watcher records every N steps.

For a layer output ``a`` of shape ``[N, C, …]`` (channels first; ``[N, C]`` for a linear layer) and
unit ``u``: ``act_sum`` = Σ a[:, u] over the probe images and positions, ``act_mean`` = its mean,
``max_mean`` = the mean over the images of each image's maximum, ``dead`` = the unit was never
positive on the probe batch. ``weight_norm`` and ``grad_norm`` are the L2 norms of the unit's
filter ``weight[u]`` and of its gradient.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["activation_stats", "filter_norms", "probe_scores", "unit_count"]


def unit_count(module: nn.Module) -> int | None:
    """The units of a layer: a conv's output channels, a linear layer's outputs (None otherwise)."""
    weight = getattr(module, "weight", None)
    return int(weight.shape[0]) if isinstance(weight, torch.Tensor) and weight.ndim >= 2 else None


def probe_scores(output: torch.Tensor) -> torch.Tensor:
    """``[N, C]``: each probe image's maximum of each unit over its positions."""
    return output.flatten(2).amax(2) if output.ndim > 2 else output


def activation_stats(output: torch.Tensor) -> dict[str, Any]:
    """``act_sum, act_mean, max_mean [C]`` (lists), ``dead_units`` (indices) and ``dead_share``."""
    per_unit = output.detach().float().transpose(0, 1).reshape(output.shape[1], -1)
    scores = probe_scores(output.detach().float())
    dead = (per_unit.amax(1) <= 0).nonzero().flatten().tolist()
    return {"act_sum": per_unit.sum(1).tolist(), "act_mean": per_unit.mean(1).tolist(),
            "max_mean": scores.mean(0).tolist(), "dead_units": dead,
            "dead_share": len(dead) / max(1, per_unit.shape[0])}


def filter_norms(module: nn.Module) -> dict[str, Any]:
    """``weight_norm [C]`` and ``grad_norm [C]`` (None before the first backward pass)."""
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.ndim < 2:
        return {"weight_norm": None, "grad_norm": None}
    with torch.no_grad():
        norms = weight.detach().flatten(1).float().norm(dim=1).tolist()
        grad = weight.grad
        grads = grad.detach().flatten(1).float().norm(dim=1).tolist() if grad is not None else None
    return {"weight_norm": norms, "grad_norm": grads}
