"""Files the browser may fetch: only images inside the run directories or the upload cache.

Routes (all GET, PNG/JPEG only):

- ``/vis/run/<run>/<path>`` a file inside run number `run` (``..``, absolute paths and symlinks that
  leave the run directory are refused with 404).
- ``/vis/source/<run>/<layer>/<unit>/<rank>.png`` the dataset image of a top-k entry, preprocessed
  like the model saw it, with the unit's receptive-field box drawn (looked up by index: no path
  from the browser reaches the file system).
- ``/vis/cache/<key>.png`` an image the dashboard made (uploads, job results); `key` is hex.
"""
from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Callable

import flask

from vistoolbox.errors import VisError

from .context import Context

__all__ = ["HEX_KEY", "IMAGE_TYPES", "cache_url", "data_uri", "inside", "register_routes", "run_url"]

IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
#: What a cache key looks like (content hashes); anything else never reaches the file system.
HEX_KEY = re.compile(r"^[0-9a-f]{8,64}$")


def inside(root: Path, relative: str) -> Path | None:
    """``root/relative`` if it is an existing image file inside `root` (after resolving links), else None."""
    if not relative or relative.startswith(("/", "\\")) or "\x00" in relative:
        return None
    root = root.resolve()
    target = (root / relative).resolve()
    if not target.is_relative_to(root) or not target.is_file() or target.suffix.lower() not in IMAGE_TYPES:
        return None
    return target


def run_url(ctx: Context, run: int, path: Path) -> str:
    """URL of a file inside run number `run`."""
    rel = path.resolve().relative_to(ctx.runs[run].root).as_posix()
    return f"/vis/run/{run}/{rel}"


def data_uri(png: bytes) -> str:
    """A PNG inline, for previews that are never stored."""
    return "data:image/png;base64," + base64.b64encode(png).decode()


def cache_url(key: str) -> str:
    """URL of an image the dashboard made (see :func:`register_routes`)."""
    return f"/vis/cache/{key}.png"


def register_routes(server: flask.Flask, ctx: Context,
                    make_source: Callable[[Context, int, str, int, int], Path]) -> None:
    """Add the file routes to the Flask server; `make_source(ctx, run, layer, unit, rank)` makes the
    PNG behind ``/vis/source/…``."""

    def send(path: Path, max_age: int = 3600) -> flask.Response:
        response = flask.send_file(path, mimetype=IMAGE_TYPES[path.suffix.lower()], max_age=max_age)
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    @server.route("/vis/run/<int:run>/<path:relative>")
    def run_file(run: int, relative: str):  # noqa: ANN202
        if not 0 <= run < len(ctx.runs):
            flask.abort(404)
        target = inside(ctx.runs[run].root, relative)
        if target is None:
            flask.abort(404)
        return send(target)

    @server.route("/vis/source/<int:run>/<layer>/<int:unit>/<int:rank>.png")
    def source_image(run: int, layer: str, unit: int, rank: int):  # noqa: ANN202
        if not 0 <= run < len(ctx.runs):
            flask.abort(404)
        try:
            path = make_source(ctx, run, layer, unit, rank)
        except (LookupError, ValueError, OSError, VisError):   # no such hit, or the run's gate refused the file
            flask.abort(404)
        return send(path)

    @server.route("/vis/cache/<key>.png")
    def cache_file(key: str):  # noqa: ANN202
        if not HEX_KEY.match(key):
            flask.abort(404)
        for folder in (ctx.uploads, ctx.jobs_dir):
            target = folder / f"{key}.png"
            if target.is_file():
                return send(target)   # content-addressed: a key never changes its bytes
        flask.abort(404)
