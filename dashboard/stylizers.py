"""Trained stylizers for the Transfer tab's fast mode: found in ``RUN/stylizers/*.pt`` of every opened
run and in the ``--stylizers`` folder, read with :func:`vistoolbox.load_stylizer` (``weights_only``
loading: nothing is unpickled), and applied with :func:`vistoolbox.stylize`.

A stylizer is a standalone generator: one trained against another loss network than the dashboard's
model works all the same; its record is only shown.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vistoolbox.errors import VisError, VisUsageError
from vistoolbox.images import load_tensor
from vistoolbox.style.stylizer import Stylizer, load_stylizer, stylize

from . import inputs
from .context import Context, content_key

__all__ = ["describe", "fast_stylize", "find_stylizers", "Found", "lookup", "MAX_FAST_SIZE", "options",
           "read_stylizer", "stylizer_folders"]

#: Longest side (px) the fast mode accepts for the content image.
MAX_FAST_SIZE = 2048

_CACHE: dict[tuple[str, int, int], Stylizer | VisError] = {}
_CACHE_LOCK = threading.Lock()


@dataclass(frozen=True)
class Found:
    """One stylizer file: where it was found and what its record says."""

    path: Path
    source: str            # "run 0" or "folder"
    stylizer: Stylizer

    @property
    def key(self) -> str:
        """The dropdown value of this file."""
        return content_key("stylizer", self.path.resolve())

    @property
    def label(self) -> str:
        name = self.stylizer.style.get("name") or self.path.stem
        texture = " — texture mode, not for content" if self.stylizer.mode != "image" else ""
        return f"{name} ({self.source}: {self.path.name}){texture}"


def stylizer_folders(ctx: Context) -> list[tuple[str, Path]]:
    """(source label, folder) for every run's ``stylizers/`` and the ``--stylizers`` folder."""
    folders = [(f"run {i}", run.root / "stylizers") for i, run in enumerate(ctx.runs)]
    if ctx.stylizers_dir is not None:
        folders.append(("folder", Path(ctx.stylizers_dir)))
    return folders


def read_stylizer(path: Path) -> Stylizer:
    """:func:`load_stylizer`, cached by (path, mtime, size) so a replaced file is read again (a file
    that cannot be read is remembered too, and raises its error again)."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    with _CACHE_LOCK:
        if key not in _CACHE:
            try:
                _CACHE[key] = load_stylizer(path)
            except VisError as exc:
                _CACHE[key] = exc
        item = _CACHE[key]
    if isinstance(item, VisError):
        raise item
    return item


def find_stylizers(ctx: Context) -> tuple[list[Found], list[str]]:
    """Every readable stylizer file (sorted by folder, then name) and one message per skipped file."""
    found: list[Found] = []
    skipped: list[str] = []
    for source, folder in stylizer_folders(ctx):
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.pt")):
            try:
                found.append(Found(path, source, read_stylizer(path)))
            except (VisError, OSError, RuntimeError, KeyError, TypeError, ValueError) as exc:
                skipped.append(f"skipped {path.name} ({source}): {exc}")
    return found, skipped


def options(found: list[Found]) -> list[dict[str, Any]]:
    """Dropdown options; the value is a key of the file's path (no server path goes to the browser)."""
    return [{"label": f.label, "value": f.key, "disabled": f.stylizer.mode != "image"} for f in found]


def lookup(ctx: Context, value: str | None) -> Found:
    """The stylizer a dropdown value names; only files the dashboard found itself are accepted."""
    if not value:
        raise VisUsageError("choose a stylizer first")
    for item in find_stylizers(ctx)[0]:
        if item.key == value:
            return item
    raise VisUsageError("that stylizer is no longer in the run or stylizers folder")


def describe(ctx: Context, found: Found) -> str:
    """One line on how the stylizer was trained (and whether its loss network is the dashboard's)."""
    s = found.stylizer
    net = s.descriptor.get("model"), s.descriptor.get("weights")
    steps = s.training.get("steps", "?")
    size = s.training.get("size", "?")
    text = (f"style {s.style.get('name', '?')} (sha256 {str(s.style.get('sha256', ''))[:12]}), {steps} steps "
            f"at {size} px, loss network {net[0]}/{net[1]}, generator width {s.config.width}")
    if net[0] and net != (ctx.model_name, ctx.weights):
        text += f" — not the dashboard's {ctx.model_name}/{ctx.weights}, which is fine: it runs on its own"
    return text


def fast_stylize(ctx: Context, content: Path, value: str | None, strength: float | None,
                 size: int | None) -> tuple[torch.Tensor, dict[str, Any]]:
    """Stylize `content` (scaled down so its longest side is at most `size`; never up) with the chosen
    stylizer → image, record."""
    from PIL import Image

    found = lookup(ctx, value)
    strength = inputs.real(strength, "strength", 0, 1, 1.0)
    if size is not None:
        size = inputs.count(size, "size", 16, MAX_FAST_SIZE)
    with Image.open(content) as opened:       # a PNG the dashboard wrote itself (uploads are checked)
        longest = max(opened.size)
    image = load_tensor(content, size=min(int(size), longest) if size else None, max_pixels=ctx.max_upload_pixels)
    start = time.perf_counter()
    result = stylize(found.stylizer, image, strength=strength)
    seconds = time.perf_counter() - start
    stat = found.path.stat()
    return result, {"seconds": seconds, "stylizer": found.path.name, "strength": strength,
                    "size": list(result.shape[-2:]), "file": [str(found.path), stat.st_mtime_ns, stat.st_size]}
