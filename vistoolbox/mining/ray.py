"""``vis mine --backend ray``: mine batch-aligned slices of the dataset as Ray tasks, merge on the driver.

Why plain Ray tasks and not Ray Data batch inference: exactness. The result must equal the local
backend bit for bit, which needs every image to pass through the model in the same batch as locally
(a conv's last float bit can depend on the batch) and a top-k merge that is exact. Ray Data
re-blocks and re-batches rows as it sees fit; tasks over slices cut on batch boundaries keep the
local batches, and each returns an exact :class:`~vistoolbox.mining.topk.MiningState` that merges like
a ``shard``. Each task rebuilds the model from its spec (name, weights, seed, input size, the mined
layers' layouts), so only
small arguments travel; the dataset must be readable at the same path on every node.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..errors import VisUsageError
from ..models import load_model
from ..parallel import connect_ray
from .datasets import ImageList, Transform
from .shards import slices
from .stream import mine_indices
from .topk import MiningState

__all__ = ["mine_on_ray"]


def _mine_slice(spec: dict, root: str, paths: list[str], kind: str, transform: dict, units: dict[str, int], k: int,
                indices: list[int], batch_size: int, threads: int,
                eligible: Mapping[str, np.ndarray | None] | None = None) -> MiningState:
    """Ray task body: mine `indices` on a worker."""
    import torch

    torch.set_num_threads(threads)
    model = load_model(spec["model"], spec["weights"], device="cpu", seed=spec["seed"] or 0,
                       input_size=spec["input_size"], quiet=True, layouts=spec.get("layouts"))
    images = ImageList(Path(root), paths, kind)
    return mine_indices(model, images, Transform(**transform), MiningState.empty(units, k), indices,
                        batch_size, quiet=True, eligible=eligible)


def mine_on_ray(spec: dict, images: ImageList, transform: Transform, state: MiningState, indices: Sequence[int],
                batch_size: int, address: str | None = None, tasks: int | None = None,
                threads: int = 1, quiet: bool = False,
                eligible: Mapping[str, np.ndarray | None] | None = None) -> MiningState:
    """Mine what is left of `indices` (after ``state.done``) on a Ray cluster; returns the merged state.

    `address` None: ``RAY_ADDRESS``, else a new local cluster; `tasks` defaults to the cluster's CPU
    count; each task uses `threads` torch threads and asks Ray for as many CPUs; `eligible` as in
    :func:`~vistoolbox.mining.stream.mine_indices`.
    """
    if spec.get("model") is None:
        raise VisUsageError("`backend` ray needs a model it can rebuild by name")
    ray = connect_ray(address, quiet)
    todo = list(indices)[state.done:]
    if not todo:
        return state
    parts = tasks or max(1, int(ray.cluster_resources().get("CPU", 1)) // threads)
    remote = ray.remote(num_cpus=threads)(_mine_slice)
    units = {name: topk.units for name, topk in state.layers.items()}
    k = next(iter(state.layers.values())).k
    futures = [remote.remote(spec, str(images.root), images.paths, images.kind, transform.to_dict(), units, k,
                             part, batch_size, threads, dict(eligible or {}))
               for part in slices(todo, batch_size, parts)]
    for result in ray.get(futures):  # in slice order; the merge is exact in any order anyway
        state = state.merge(result)
    return state
