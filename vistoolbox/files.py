"""Atomic file writes: a temp file in the same folder, then ``os.replace`` (never a half-written file)."""
from __future__ import annotations

import errno
import io
import json
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

__all__ = ["file_mode", "is_temp_of", "read_json", "write_atomic", "write_bytes", "write_json", "write_npz"]

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


#: The temp file of an atomic write of NAME: ``.NAME.<8 random characters>.tmp`` (left by a kill).
_TEMP = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp$")


def is_temp_of(filename: str, names: Iterable[str] | None = None) -> bool:
    """True when `filename` is the temp file of an atomic write (of one of `names`, if given)."""
    match = _TEMP.match(filename)
    return bool(match) and (names is None or match.group("name") in set(names))


def _fsync(path: str | Path, directory: bool = False) -> None:
    """Flush a file's data (or a folder's entries) to the disk."""
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        if directory:  # folders cannot be opened on some platforms (Windows): nothing to flush there
            return
        raise
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: str | Path, writer: Callable[[str], None], durable: bool = False) -> Path:
    """Call ``writer(tmp_path)`` then rename onto `path`; parent folders are created.

    `durable` also flushes the file before the rename and its folder after, so a power loss leaves
    the old file or the new one — never a renamed but empty file (manifests, checkpoints, results).
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
        if durable:
            _fsync(tmp)
        os.replace(tmp, path)
        if durable:
            _fsync(path.parent, directory=True)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_bytes(path: str | Path, data: bytes, durable: bool = False) -> Path:
    """Atomically write `data` to `path` (see :func:`write_atomic` for `durable`)."""
    return write_atomic(path, lambda tmp: Path(tmp).write_bytes(data), durable)


def write_json(path: str | Path, obj: Any, indent: int | None = 1, durable: bool = False) -> Path:
    """Atomically write `obj` as JSON (numpy scalars/arrays and paths converted)."""
    return write_bytes(path, (json.dumps(obj, indent=indent, default=_jsonable) + "\n").encode(), durable)


def write_npz(path: str | Path, arrays: dict[str, np.ndarray], durable: bool = False) -> Path:
    """Atomically write `arrays` as one uncompressed ``.npz``."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return write_bytes(path, buf.getvalue(), durable)


def read_json(path: str | Path) -> Any:
    """The JSON value stored in `path`."""
    return json.loads(Path(path).read_text())


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")
