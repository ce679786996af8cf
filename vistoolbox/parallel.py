"""The Ray connection every distributed job shares (mining slices, batches of optimised units)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .errors import VisRuntimeError, VisUsageError

__all__ = ["connect_ray"]


def connect_ray(address: str | None = None, quiet: bool = True) -> Any:
    """The ``ray`` module, initialised: the cluster at `address` (None: ``RAY_ADDRESS``, else a new
    local one). Workers get this checkout on their ``PYTHONPATH``. Missing Ray or an unreachable
    cluster is a one-line error."""
    try:
        import ray
    except ImportError:
        raise VisUsageError("`backend` ray needs Ray: pip install 'vistoolbox[ray]'") from None
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
