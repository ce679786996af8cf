"""Atomic file writes: a temp file in the same folder, then ``os.replace`` (never a half-written file)."""
from __future__ import annotations

import errno
import io
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable

import numpy as np

__all__ = ["file_mode", "read_json", "write_atomic", "write_bytes", "write_json", "write_npz"]

_MODE: list[int] = []
_MODE_LOCK = threading.Lock()


def file_mode() -> int:
    """The permissions of a new file under this process's umask (0666 minus the umask).

    Read from ``/proc/self/status`` where it exists; elsewhere the umask is set and restored once,
    under a lock, on first use (never at import)."""
    with _MODE_LOCK:
        if not _MODE:
            umask = None
            try:
                for line in Path("/proc/self/status").read_text().splitlines():
                    if line.startswith("Umask:"):
                        umask = int(line.split()[1], 8)
            except (OSError, ValueError):
                pass
            if umask is None:
                umask = os.umask(0o022)
                os.umask(umask)
            _MODE.append(0o666 & ~umask)
        return _MODE[0]


def write_atomic(path: str | Path, writer: Callable[[str], None]) -> Path:
    """Call ``writer(tmp_path)`` then rename onto `path`; parent folders are created.

    An OSError names `path` (not the temp file): ``ENOTDIR`` when a part of the path is a file."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(path)) from exc
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
    os.close(fd)
    try:
        writer(tmp)
        os.chmod(tmp, file_mode())  # mkstemp makes 0600 files; results get the usual permissions
        os.replace(tmp, path)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
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


def write_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> Path:
    """Atomically write `arrays` as one uncompressed ``.npz``."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return write_bytes(path, buf.getvalue())


def read_json(path: str | Path) -> Any:
    """The JSON value stored in `path`."""
    return json.loads(Path(path).read_text())


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")
