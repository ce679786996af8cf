"""How faithful a map is, for class targets: Average Drop, Increase in Confidence and ROAD.

With ``p(x)`` the softmax probability of the target class on the normalised input ``x`` and ``s`` the
map upsampled to the input and min-max scaled to 0–1 per image:

* **Average Drop** (Chattopadhay et al. 2018, as torch-cam computes it): ``relu(p(x) − p(s·x)) /
  (p(x) + 1e-7)`` per image, averaged (lower is better);
* **Increase in Confidence**: the fraction of images with ``p(s·x) > p(x)`` (higher is better);
* **ROAD** (Rong et al. 2022, remove and debias): the ``q`` % of pixels the map ranks most relevant
  (MoRF) or least relevant (LeRF) are replaced by a noisy linear imputation — each removed pixel the
  weighted mean of its 8 neighbours (1/6 for the 4 beside it, 1/12 for the diagonals), solved as one
  sparse linear system per image, plus Gaussian noise of σ 0.01 — for q = 10, 20, … 90, and ``p`` is
  measured on each. A faithful map makes MoRF fall fast and LeRF stay high: ``road_morf`` and
  ``road_lerf`` are the mean probabilities over the nine q, ``road_gap = road_lerf − road_morf``
  (higher is better).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

__all__ = ["PERCENTS", "average_drop", "impute", "road", "scaled"]

PERCENTS = (10, 20, 30, 40, 50, 60, 70, 80, 90)

#: ``probability(x, images)``: the target's softmax probability ``[M]`` on each row of the normalised batch `x`
#: ``[M, 3, H, W]``, row j standing for image ``images[j]`` (whose target class it takes).
Probability = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def scaled(saliency: torch.Tensor) -> torch.Tensor:
    """``[N, H, W]`` min-max scaled to 0–1 per image (a flat map becomes 0)."""
    flat = saliency.flatten(1)
    low, high = flat.min(1).values[:, None, None], flat.max(1).values[:, None, None]
    return (saliency - low) / (high - low).clamp_min(1e-12)


def average_drop(probability: Probability, x: torch.Tensor, saliency: torch.Tensor) -> dict[str, list[float]]:
    """Per image: ``drop`` and ``increase`` (1.0 or 0.0), see the module's definitions."""
    images = torch.arange(x.shape[0])
    base = probability(x, images)
    masked = probability(x * scaled(saliency)[:, None], images)
    drop = (base - masked).clamp_min(0) / (base + 1e-7)
    return {"drop": drop.tolist(), "increase": (masked > base).float().tolist()}


def _neighbours() -> list[tuple[int, int, float]]:
    return [(dy, dx, 1 / 6 if dy == 0 or dx == 0 else 1 / 12)
            for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]


def impute(image: torch.Tensor, removed: torch.Tensor, noise: float = 0.01,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """`image` ``[C, H, W]`` with the pixels where `removed` ``[H, W]`` is True replaced by the noisy linear
    imputation (every removed pixel the weighted mean of its neighbours inside the image, all solved
    together, plus N(0, `noise`²))."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.linalg import spsolve

    c, h, w = image.shape
    mask = removed.cpu().numpy().astype(bool)
    count = int(mask.sum())
    if count == 0:
        return image.clone()
    values = image.detach().cpu().double().numpy().reshape(c, -1)
    number = -np.ones(h * w, dtype=np.int64)
    where = np.flatnonzero(mask.ravel())
    number[where] = np.arange(count)
    ys, xs = np.divmod(where, w)
    rows, cols, data = [], [], []
    diagonal = np.zeros(count)
    rhs = np.zeros((count, c))
    for dy, dx, weight in _neighbours():
        ny, nx = ys + dy, xs + dx
        inside = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
        at = np.flatnonzero(inside)
        flat = ny[at] * w + nx[at]
        diagonal[at] += weight
        unknown = number[flat] >= 0
        rows.append(at[unknown])
        cols.append(number[flat[unknown]])
        data.append(np.full(int(unknown.sum()), -weight))
        known = ~unknown
        np.add.at(rhs, at[known], weight * values[:, flat[known]].T)
    rows.append(np.arange(count))
    cols.append(np.arange(count))
    data.append(diagonal)
    matrix = coo_matrix((np.concatenate(data), (np.concatenate(rows), np.concatenate(cols))),
                        shape=(count, count)).tocsc()
    solved = np.asarray(spsolve(matrix, rhs)).reshape(count, c)
    out = values.copy()
    out[:, where] = solved.T
    result = torch.from_numpy(out.reshape(c, h, w)).to(image.dtype)
    if noise:
        jitter = torch.randn(c, count, generator=generator, dtype=torch.float64) * noise
        result.view(c, -1)[:, torch.from_numpy(where)] += jitter.to(image.dtype)
    return result.to(image.device)


def road(probability: Probability, x: torch.Tensor, saliency: torch.Tensor, percents: Sequence[int] = PERCENTS,
         seed: int = 0) -> dict[str, list]:
    """Per image: ``morf`` and ``lerf``, the target's probability after removing each `percents` % of
    the most / least relevant pixels (ties broken by pixel order), and their means."""
    generator = torch.Generator().manual_seed(seed)
    n, _, h, w = x.shape
    order = torch.argsort(saliency.flatten(1), dim=1, descending=True, stable=True)
    curves: dict[str, list[list[float]]] = {"morf": [], "lerf": []}
    for i in range(n):
        for name, ranked in (("morf", order[i]), ("lerf", order[i].flip(0))):
            batch = []
            for q in percents:
                removed = torch.zeros(h * w, dtype=torch.bool)
                removed[ranked[: round(h * w * q / 100)].cpu()] = True
                batch.append(impute(x[i], removed.view(h, w), generator=generator))
            curves[name].append(probability(torch.stack(batch).to(x.device), torch.full((len(batch),), i)).tolist())
    morf = [float(np.mean(c)) for c in curves["morf"]]
    lerf = [float(np.mean(c)) for c in curves["lerf"]]
    return {"percents": list(percents), "morf": curves["morf"], "lerf": curves["lerf"], "road_morf": morf,
            "road_lerf": lerf, "road_gap": [b - a for a, b in zip(morf, lerf)]}

