"""Streaming, vectorised per-unit top-k with exact merges, plus per-unit statistics.

Each image contributes one candidate per unit: its spatial maximum over the layer's eligible
positions (:mod:`.positions`) and where it is (first position in row-major order on exact ties; fc
layers: y = x = −1). Candidates are ranked by value, descending; equal values rank
the lower image index first. Because that order is total, the top-k of a union is the top-k of the
parts' top-ks: batches, checkpoints, shards and Ray tasks all merge to the same result.

Statistics are kept in exact integer form (counts, and the sum of spatial maxima in fixed point at
``2**-16``) so they merge exactly too. Histogram edges are fixed and symmetric-log spaced
(``±2**-8 … ±2**12`` in half-octave steps, plus 0), shared by every unit of every run.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..files import write_npz
from ..rundir import damaged, read_arrays

__all__ = ["BINS", "HIST_EDGES", "MiningState", "UnitTopK"]

SUM_SCALE = 2.0 ** 16
SUM_CLAMP = 2.0 ** 24
_POS = 2.0 ** np.arange(-8.0, 12.5, 0.5)
HIST_EDGES = np.concatenate([-_POS[::-1], [0.0], _POS]).astype(np.float64)
BINS = len(HIST_EDGES) - 1
_ARRAYS = ("values", "index", "y", "x", "sum_q", "active", "hist")


@dataclass
class UnitTopK:
    """Running top-k of one layer: ``values/index/y/x [U, k]`` plus statistics over `seen` images.

    Empty slots (fewer than k images so far) have value ``-inf`` and index ``-1``.
    """

    values: torch.Tensor   # float32 [U, k], descending
    index: torch.Tensor    # int64 [U, k]
    y: torch.Tensor        # int64 [U, k]; -1 for layers without spatial dimensions
    x: torch.Tensor
    sum_q: torch.Tensor    # int64 [U]: sum of round(spatial max · 2**16)
    active: torch.Tensor   # int64 [U]: images with spatial max > 0
    hist: torch.Tensor     # int64 [U, BINS]

    @classmethod
    def empty(cls, units: int, k: int) -> "UnitTopK":
        if k < 1:
            raise ValueError("k must be at least 1")
        full = lambda v: torch.full((units, k), v, dtype=torch.int64)  # noqa: E731
        return cls(torch.full((units, k), -float("inf")), full(-1), full(-1), full(-1),
                   torch.zeros(units, dtype=torch.int64), torch.zeros(units, dtype=torch.int64),
                   torch.zeros(units, BINS, dtype=torch.int64))

    @property
    def k(self) -> int:
        return self.values.shape[1]

    @property
    def units(self) -> int:
        return self.values.shape[0]

    # ----------------------------------------------------------------- streaming
    def update(self, activations: torch.Tensor, image_index: torch.Tensor,
               valid: torch.Tensor | None = None, eligible: torch.Tensor | None = None) -> None:
        """Add a batch: `activations` ``[B, U, H, W]`` or ``[B, U]``, `image_index` ``[B]`` ascending
        and above every index seen so far (the streaming order); rows where `valid` is False
        (skipped files) are left out. `eligible` (bool ``[H, W]``, None = all) restricts the spatial
        maximum to those positions (:mod:`.positions`).

        Only the spatial maxima are computed for every (image, unit); the position of the maximum
        is looked up just for the candidates that enter the top-k (a later image enters only by
        beating the current k-th value outright), which keeps the bookkeeping far below the cost
        of the forward pass.
        """
        if activations.dim() not in (2, 4):
            raise ValueError(f"cannot mine a layer with output shape {tuple(activations.shape)}; "
                             "need [N, C, H, W] or [N, C]")
        image_index = image_index.cpu()
        if valid is not None and not bool(valid.all()):
            activations, image_index = activations[valid.to(activations.device)], image_index[valid.cpu()]
        if activations.shape[0] == 0:
            return
        flat = activations.flatten(2) if activations.dim() == 4 else None
        if flat is not None and eligible is not None:
            flat = flat.masked_fill(~eligible.to(flat.device).view(1, 1, -1), -float("inf"))
        values = (flat.amax(2) if flat is not None else activations).detach().float().cpu()  # [B, U]
        self._accumulate(values)
        enter = values.t() > self.values[:, -1:]  # [U, B]
        rows = enter.any(1).nonzero().squeeze(1)
        if rows.numel() == 0:
            return
        y = torch.full(values.shape, -1, dtype=torch.int64)
        x = torch.full(values.shape, -1, dtype=torch.int64)
        if flat is not None:
            unit, image = enter.nonzero(as_tuple=True)
            position = flat[image.to(flat.device), unit.to(flat.device)].argmax(1).cpu()  # first maximum
            width = activations.shape[-1]
            y[image, unit], x[image, unit] = position // width, position % width
        cand_i = image_index.view(1, -1).expand(len(rows), -1)
        best = self._select(torch.cat([self.values[rows], values.t()[rows]], 1),
                            torch.cat([self.index[rows], cand_i], 1),
                            torch.cat([self.y[rows], y.t()[rows]], 1), torch.cat([self.x[rows], x.t()[rows]], 1),
                            presorted=True)
        for target, chosen in zip((self.values, self.index, self.y, self.x), best):
            target[rows] = chosen

    def _accumulate(self, values: torch.Tensor) -> None:
        q = torch.round(values.double().clamp(-SUM_CLAMP, SUM_CLAMP) * SUM_SCALE).long()
        self.sum_q += q.sum(0)
        self.active += (values > 0).sum(0)
        inner = torch.from_numpy(HIST_EDGES[1:-1]).float()
        bins = torch.bucketize(values.clamp(float(HIST_EDGES[0]), float(HIST_EDGES[-1])), inner, right=True)
        flat = (torch.arange(self.units).view(1, -1) * BINS + bins).flatten()
        self.hist.view(-1).index_add_(0, flat, torch.ones_like(flat))

    def _select(self, values: torch.Tensor, index: torch.Tensor, y: torch.Tensor, x: torch.Tensor,
                presorted: bool) -> tuple[torch.Tensor, ...]:
        """The k best candidate columns: value descending, then image index ascending.

        With `presorted` the columns are already in ascending image-index order (streaming), so one
        stable sort by value suffices; otherwise sort by index first (empty slots last)."""
        if not presorted:
            key = torch.where(index < 0, torch.iinfo(torch.int64).max, index)
            order = torch.sort(key, dim=1, stable=True).indices
            values, index, y, x = (t.gather(1, order) for t in (values, index, y, x))
        order = torch.sort(values, dim=1, descending=True, stable=True).indices[:, : self.k]
        return tuple(t.gather(1, order) for t in (values, index, y, x))

    def merge(self, other: "UnitTopK") -> "UnitTopK":
        """The exact top-k and statistics of the union of two disjoint image sets."""
        if other.values.shape != self.values.shape:
            raise ValueError(f"cannot merge top-k of shape {tuple(other.values.shape)} into "
                             f"{tuple(self.values.shape)}")
        out = UnitTopK(*(getattr(self, name).clone() for name in _ARRAYS))
        out.values, out.index, out.y, out.x = out._select(
            torch.cat([self.values, other.values], 1), torch.cat([self.index, other.index], 1),
            torch.cat([self.y, other.y], 1), torch.cat([self.x, other.x], 1), presorted=False)
        out.sum_q = self.sum_q + other.sum_q
        out.active = self.active + other.active
        out.hist = self.hist + other.hist
        return out

    # ----------------------------------------------------------------- (de)serialisation
    def arrays(self) -> dict[str, np.ndarray]:
        """Every array of the running state (for checkpoints)."""
        return {name: getattr(self, name).numpy() for name in _ARRAYS}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "UnitTopK":
        """The inverse of :meth:`arrays`."""
        return cls(*(torch.from_numpy(np.array(arrays[name])) for name in _ARRAYS))

    def topk_file(self) -> dict[str, np.ndarray]:
        """Contents of ``topk.npz``: values float32, image_index, y, x int64, all ``[U, k]``."""
        return {"values": self.values.numpy().astype(np.float32), "image_index": self.index.numpy(),
                "y": self.y.numpy(), "x": self.x.numpy()}

    def stats_file(self, seen: int) -> dict[str, np.ndarray]:
        """Contents of ``stats.npz``: mean_max, frac_active [U], hist_edges [BINS+1], hist_counts [U, BINS]."""
        n = max(seen, 1)
        return {"mean_max": (self.sum_q.double().numpy() / SUM_SCALE / n).astype(np.float64),
                "frac_active": self.active.double().numpy() / n,
                "hist_edges": HIST_EDGES.copy(), "hist_counts": self.hist.numpy()}


@dataclass
class MiningState:
    """Everything a run needs to resume: per-layer top-k, images done, images seen and skipped."""

    layers: dict[str, UnitTopK]
    done: int = 0          # images of this run's index range already processed
    seen: int = 0          # decoded images that entered the top-k
    skipped: list[int] = field(default_factory=list)

    @classmethod
    def empty(cls, units: dict[str, int], k: int) -> "MiningState":
        """A state with no image yet for layers ``{name: units}``."""
        return cls({name: UnitTopK.empty(count, k) for name, count in units.items()})

    def merge(self, other: "MiningState") -> "MiningState":
        """Union of two states over disjoint images (exact)."""
        return MiningState({name: topk.merge(other.layers[name]) for name, topk in self.layers.items()},
                           self.done + other.done, self.seen + other.seen,
                           sorted(self.skipped + other.skipped))

    def save(self, path: Path) -> None:
        """Write atomically as one ``.npz`` (arrays plus a JSON header)."""
        arrays = {f"{name}/{key}": value for name, topk in self.layers.items()
                  for key, value in topk.arrays().items()}
        header = {"done": self.done, "seen": self.seen, "skipped": self.skipped, "layers": list(self.layers)}
        arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
        write_npz(path, arrays, durable=True)  # a checkpoint must survive a power loss

    @classmethod
    def load(cls, path: Path, advice: str = "delete it to start this pass again") -> "MiningState":
        """Read a state written by :meth:`save`; a damaged file is a one-line error ending in `advice`."""
        data = read_arrays(path, advice)
        try:
            header = json.loads(bytes(data["header"]).decode())
            layers = {name: UnitTopK.from_arrays({key.split("/", 1)[1]: data[key] for key in data
                                                  if key.startswith(name + "/")})
                      for name in header["layers"]}
            state = cls(layers, int(header["done"]), int(header["seen"]), [int(i) for i in header["skipped"]])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise damaged(path, f"not a mining state: {type(exc).__name__} {str(exc)[:60]}", advice) from None
        shapes = {name: (t.values.shape, t.index.shape, t.y.shape, t.x.shape) for name, t in layers.items()}
        if any(len(set(s)) != 1 or len(s[0]) != 2 for s in shapes.values()):
            raise damaged(path, "its top-k arrays disagree in shape", advice)
        return state

    def matches(self, units: dict[str, int], k: int) -> bool:
        """True when the state holds exactly these layers, with these unit counts, and this `k`."""
        return list(self.layers) == list(units) and all(
            tuple(topk.values.shape) == (units[name], k) for name, topk in self.layers.items())
