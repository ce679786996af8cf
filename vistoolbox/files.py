"""Atomic file writes: a temp file in the same folder, then ``os.replace`` (never a half-written file)."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

_UMASK = os.umask(0)
os.umask(_UMASK)
#: mkstemp makes 0600 files; results get the usual permissions (0666 minus the umask).
FILE_MODE = 0o666 & ~_UMASK


def write_atomic(path: str | Path, writer: Callable[[str], None]) -> Path:
    """Call ``writer(tmp_path)`` then rename onto `path`; parent folders are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        writer(tmp)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Atomically write `data` to `path`."""
    return write_atomic(path, lambda tmp: Path(tmp).write_bytes(data))


def write_json(path: str | Path, obj: Any, indent: int | None = 1) -> Path:
    """Atomically write `obj` as JSON (numpy scalars/arrays and paths converted)."""
    return write_bytes(path, (json.dumps(obj, indent=indent, default=_jsonable) + "\n").encode())


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")
