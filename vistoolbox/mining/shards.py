"""Cutting a dataset into parts on batch boundaries, so every part feeds each image through the
model in the same batch as an unsharded run (a conv's last float bit can depend on the batch)."""
from __future__ import annotations

from typing import Sequence

from ..errors import VisUsageError

__all__ = ["shard_range", "slices"]


def shard_range(count: int, shard: int, shards: int, batch_size: int) -> range:
    """Images of shard `shard` of `shards`: contiguous, cut on batch boundaries."""
    if shards < 1 or not 0 <= shard < shards:
        raise VisUsageError(f"`shard` must be i/n with 0 <= i < n, got {shard}/{shards}")
    nbatches = -(-count // batch_size)
    start, stop = (shard * nbatches) // shards, ((shard + 1) * nbatches) // shards
    return range(min(start * batch_size, count), min(stop * batch_size, count))


def slices(indices: Sequence[int], batch_size: int, parts: int) -> list[list[int]]:
    """Split `indices` into at most `parts` contiguous slices cut on batch boundaries."""
    indices = list(indices)
    batches = [indices[i:i + batch_size] for i in range(0, len(indices), batch_size)]
    parts = max(1, min(parts, len(batches)))
    bounds = [(p * len(batches)) // parts for p in range(parts + 1)]
    return [[i for batch in batches[a:b] for i in batch] for a, b in zip(bounds, bounds[1:]) if b > a]
