"""Where the batches of ``maximize_layer`` run: in this process, or spread over a Ray cluster.

Both yield ``(units, MaximizeResult)`` per batch; the caller writes the files, so the run
directory is the same whichever backend made it (each unit's start depends only on (seed, unit),
and Ray workers use the driver's thread count).
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

import torch

from ..errors import VisUsageError
from ..models import LoadedModel
from ..parallel import connect_ray
from .result import MaximizeResult

__all__ = ["BACKENDS", "executor", "run_local", "run_ray"]

Render = Callable[..., MaximizeResult]
BACKENDS = ("local", "ray")


def run_local(render: Render, model: LoadedModel, layer: str, chunks: list[list[int]],
              kwargs: dict[str, Any]) -> Iterator[tuple[list[int], MaximizeResult]]:
    """One batch after another in this process."""
    for chunk in chunks:
        yield chunk, render(model, layer, chunk, **kwargs)


def _remote_render(render: Render, model: LoadedModel, layer: str, chunk: list[int], threads: int,
                   kwargs: dict[str, Any]) -> MaximizeResult:
    torch.set_num_threads(threads)
    return render(model, layer, chunk, **kwargs)


def run_ray(render: Render, model: LoadedModel, layer: str, chunks: list[list[int]],
            kwargs: dict[str, Any]) -> Iterator[tuple[list[int], MaximizeResult]]:
    """Batches as Ray tasks (``RAY_ADDRESS`` picks a cluster, else a local one), yielded as they
    finish. The model is put in the object store once."""
    ray = connect_ray()
    task = ray.remote(_remote_render)
    model_ref = ray.put(model)
    threads = torch.get_num_threads()
    pending = {task.options(num_cpus=threads).remote(render, model_ref, layer, chunk, threads, kwargs): chunk
               for chunk in chunks}
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        for ref in done:
            yield pending.pop(ref), ray.get(ref)


def executor(backend: str) -> Callable[..., Iterator[tuple[list[int], MaximizeResult]]]:
    """The runner for a backend name."""
    if backend == "local":
        return run_local
    if backend == "ray":
        return run_ray
    raise VisUsageError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
