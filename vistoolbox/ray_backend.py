"""``vis mine --backend ray``: mine batch-aligned slices of the dataset as Ray tasks, merge on the driver.

Why plain Ray tasks and not Ray Data batch inference: exactness. The result must equal the local
backend bit for bit, which needs every image to pass through the model in the same batch as locally
(a conv's last float bit can depend on the batch) and a top-k merge that is exact. Ray Data
re-blocks and re-batches rows as it sees fit; tasks over slices cut on batch boundaries keep the
local batches, and each returns an exact :class:`~vistoolbox.mining.MiningState` that merges like a
``--shard``. Each task rebuilds the model from its spec (name, weights, seed, input size), so only
small arguments travel; the dataset must be readable at the same path on every node.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from .datasets import ImageList, Transform
from .errors import VisRuntimeError, VisUsageError
from .mining import MiningState, mine_indices


def connect_ray(address: str | None = None, quiet: bool = True) -> Any:
    """The ``ray`` module, initialised: the cluster at `address` (None: ``RAY_ADDRESS``, else a new
    local one). Workers get this checkout on their ``PYTHONPATH``. Missing Ray or an unreachable
    cluster is a one-line error."""
    try:
        import ray
    except ImportError:
        raise VisUsageError("--backend ray needs Ray: pip install 'vistoolbox[ray]'") from None
    if ray.is_initialized():
        return ray
    root = str(Path(__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=not quiet, configure_logging=not quiet,
                 runtime_env={"env_vars": {"PYTHONPATH": path}})
    except Exception as exc:  # noqa: BLE001 - connection errors vary
        raise VisRuntimeError(f"cannot start or reach a Ray cluster at {address or 'local'}: "
                              f"{str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}") from None
    return ray


def _mine_slice(spec: dict, root: str, paths: list[str], kind: str, transform: dict, entries: dict, k: int,
                indices: list[int], batch_size: int, threads: int) -> MiningState:
    """Ray task body: mine `indices` on a worker."""
    import torch

    from .models import load_model

    torch.set_num_threads(threads)
    model = load_model(spec["model"], spec["weights"], device="cpu", seed=spec["seed"] or 0,
                       input_size=spec["input_size"], quiet=True)
    images = ImageList(Path(root), paths, kind)
    return mine_indices(model, images, Transform(**transform), MiningState.empty(entries, k), indices,
                        batch_size, quiet=True)


def slices(indices: Sequence[int], batch_size: int, parts: int) -> list[list[int]]:
    """Split `indices` into at most `parts` contiguous slices cut on batch boundaries."""
    indices = list(indices)
    batches = [indices[i:i + batch_size] for i in range(0, len(indices), batch_size)]
    parts = max(1, min(parts, len(batches)))
    bounds = [(p * len(batches)) // parts for p in range(parts + 1)]
    return [[i for batch in batches[a:b] for i in batch] for a, b in zip(bounds, bounds[1:]) if b > a]


def mine_on_ray(spec: dict, images: ImageList, transform: Transform, state: MiningState, indices: Sequence[int],
                batch_size: int, address: str | None = None, tasks: int | None = None,
                threads: int = 1, quiet: bool = False) -> MiningState:
    """Mine what is left of `indices` (after ``state.done``) on a Ray cluster; returns the merged state.

    `address` None: ``RAY_ADDRESS``, else a new local cluster; `tasks` defaults to the cluster's CPU
    count; each task uses `threads` torch threads and asks Ray for as many CPUs.
    """
    if spec.get("model") is None:
        raise VisUsageError("--backend ray needs a model it can rebuild by name")
    ray = connect_ray(address, quiet)
    todo = list(indices)[state.done:]
    if not todo:
        return state
    parts = tasks or max(1, int(ray.cluster_resources().get("CPU", 1)) // threads)
    remote = ray.remote(num_cpus=threads)(_mine_slice)
    entries = {name: {"units": topk.units} for name, topk in state.layers.items()}
    k = next(iter(state.layers.values())).k
    futures = [remote.remote(spec, str(images.root), images.paths, images.kind, transform.to_dict(), entries, k,
                             part, batch_size, threads) for part in slices(todo, batch_size, parts)]
    for result in ray.get(futures):  # in slice order; the merge is exact in any order anyway
        state = state.merge(result)
    return state
