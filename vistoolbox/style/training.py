"""What every trained style network shares (the stylizer, the universal decoders): the step loop with
its progress bar and checkpoints, the refusal to resume with other settings, and the safe reading of
a self-describing ``torch.save`` file (``weights_only=True``; foreign or corrupt files are usage errors).

A step is a function of its number alone (the caller draws its batch from the seed and the step),
and the optimiser's state travels in every checkpoint, so an interrupted run (Ctrl-C, or ``kill -9``
after a checkpoint) resumed gives the same file as an uninterrupted one.
"""
from __future__ import annotations

import pickle
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from tqdm import tqdm

from ..errors import VisUsageError

__all__ = ["canonical", "check_out", "check_resume", "read_checkpoint", "run_steps"]


def canonical(value: Any) -> Any:
    """A file payload rebuilt with every string interned: pickle writes a string met twice as a
    reference to the first, so payloads that are equal but share strings differently (a run resumed
    from a loaded file vs an uninterrupted one) would otherwise give different bytes."""
    if isinstance(value, str):
        return sys.intern(value)
    if isinstance(value, dict):
        return {canonical(k): canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(canonical(v) for v in value)
    return value


def check_out(out: Path | None, resume: bool, what: str) -> None:
    """`out` must be a file path; an existing one only with `resume`, and `resume` needs one."""
    if out is not None and out.is_dir():
        raise VisUsageError(f"`out` {str(out)!r} is a folder; give the {what}'s file name (e.g. {what}.pt)")
    if out is not None and out.exists() and not resume:
        raise VisUsageError(f"{str(out)!r} exists; pass `resume` to continue it or choose another `out`")
    if resume and (out is None or not out.exists()):
        raise VisUsageError(f"`resume` needs an existing checkpoint at `out`, and {str(out)!r} does not exist")


def check_resume(pairs: Iterable[tuple[str, Any, Any]]) -> None:
    """Refuse to resume when a ``(what, checkpoint's, now)`` pair differs (names the first one)."""
    for what, old, new in pairs:
        if old != new:
            raise VisUsageError(f"cannot resume: {what} differs from the checkpoint's ({old} vs {new}); "
                                "use the same settings, or a new `out` to start afresh")


def run_steps(step: Callable[[int], dict[str, float]], *, start: int, steps: int, checkpoint_every: int,
              checkpoint: Callable[[int], None], history: dict[str, list], desc: str, quiet: bool) -> int:
    """Run ``step(i)`` for i in [start, steps): each returns its losses (``total`` first shown), which are
    appended to `history` with ``step = i + 1``; ``checkpoint(done)`` every `checkpoint_every` steps, at
    the end, and on Ctrl-C (then re-raised). Returns the number of steps done."""
    bar = tqdm(total=steps, initial=min(start, steps), disable=quiet, file=sys.stderr, desc=desc, unit="step",
               dynamic_ncols=True)
    try:
        for i in range(start, steps):
            values = {"step": i + 1, **step(i)}
            for key in history:
                history[key].append(values.get(key, 0.0))
            bar.update(1)
            bar.set_postfix({k: f"{v:.3g}" for k, v in values.items() if k != "step"}, refresh=False)
            if (i + 1) % checkpoint_every == 0 and i + 1 < steps:
                checkpoint(i + 1)
    except KeyboardInterrupt:  # keep the finished steps: the history says how many
        checkpoint(int(history["step"][-1]) if history["step"] else start)
        raise
    finally:
        bar.close()
    done = max(start, steps)
    checkpoint(done)
    return done


def read_checkpoint(path: str | Path, fmt: str, version: int, what: str, made_by: str) -> dict[str, Any]:
    """The dict in a ``torch.save`` file of format `fmt`, read with ``weights_only=True``.

    A missing file, a non-torch file, pickled Python objects, another format or version: one-line
    usage errors naming `what` (e.g. ``stylizer``) and the command that makes one (`made_by`)."""
    path = Path(path)
    if not path.is_file():
        raise VisUsageError(f"{what} file {str(path)!r} does not exist")
    if not zipfile.is_zipfile(path):
        raise VisUsageError(f"cannot read {str(path)!r} as a {what} file: not a torch archive (make one with "
                            f"{made_by})")
    try:
        with warnings.catch_warnings():  # torch warns about foreign pickle protocols on stderr
            warnings.simplefilter("ignore")
            data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise VisUsageError(f"cannot read {str(path)!r} as a {what} file: it holds Python objects that "
                            "weights-only loading refuses (nothing was unpickled)") from None
    except Exception as exc:  # noqa: BLE001 - corrupt/foreign files fail in many ways
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise VisUsageError(f"cannot read {str(path)!r} as a {what} file: {reason}") from None
    if not isinstance(data, dict) or data.get("format") != fmt:
        raise VisUsageError(f"{str(path)!r} is not a vistoolbox {what} file (made by {made_by})")
    if data.get("version") != version:
        raise VisUsageError(f"{str(path)!r} has {what} format version {data.get('version')}; "
                            f"this vistoolbox reads version {version}")
    return data
