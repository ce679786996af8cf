"""The gate for every file a run names: it must lie inside the folder it belongs to (the run, or the
dataset root the run may read), be a regular file (no FIFO, device or link that leads out) and be no
larger than its kind allows, before a byte of it is read. :mod:`vistoolbox.rundir` reads the run
format only through these checks; a file that fails one is *damaged* (one line, never a hang or
an out-of-memory)."""
from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path

import numpy as np

from .errors import VisRuntimeError

__all__ = ["CAPS", "checked_file", "damaged", "inside", "npz_members", "plain_name", "read_capped",
           "relative_inside"]

MIB = 2**20
#: The largest file of each kind a run may hold (bytes): far above what a real run writes (a manifest
#: of a few hundred layers is < 1 MiB; images.json lists ~60 bytes per image).
CAPS = {"manifest": 16 * MIB, "images": 256 * MIB, "record": 4 * MIB, "arrays": 2048 * MIB, "image": 512 * MIB}


def damaged(path: str | Path, reason: str, advice: str = "restore it from a copy or mine the run again"
            ) -> VisRuntimeError:
    """The one-line error for a run file that cannot be read as what it should be (exit 1)."""
    return VisRuntimeError(f"{str(path)!r} is damaged ({reason}); {advice}")


def inside(path: Path, root: Path) -> bool:
    """True when `path`, links resolved, lies inside `root` (itself resolved)."""
    try:
        return path.resolve().is_relative_to(root.resolve())
    except (OSError, RuntimeError, ValueError):   # a link loop, a NUL byte
        return False


def plain_name(name: str) -> bool:
    """True for a name that is one plain path component (a layer folder): not empty, ``.``, ``..``,
    and without ``/``, ``\\`` or NUL."""
    return bool(name) and name not in {".", ".."} and not any(c in name for c in "/\\\x00")


def relative_inside(relative: str) -> bool:
    """True for a relative path that does not climb out of its folder (no absolute path, drive or
    ``..``; string checks only, fast for a million names)."""
    if not relative or "\x00" in relative or relative.startswith(("/", "\\")) or relative[1:2] == ":":
        return False
    return ".." not in relative or ".." not in relative.replace("\\", "/").split("/")


def checked_file(path: str | Path, root: str | Path, kind: str) -> Path:
    """`path` resolved, once it is a regular file inside `root` no larger than ``CAPS[kind]``.

    A missing file raises FileNotFoundError (callers decide what absence means); anything else that
    fails is :func:`damaged`."""
    path = Path(path)
    if not inside(path, Path(root)):
        raise damaged(path, f"it lies outside {str(root)!r} (a '..', an absolute path or a link leading out)")
    target = path.resolve()
    try:
        info = os.stat(target)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise damaged(path, f"cannot be read: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise damaged(path, "not a regular file (a device, FIFO or folder)")
    if info.st_size > CAPS[kind]:
        raise damaged(path, f"{info.st_size:,} bytes, above the {CAPS[kind] // MIB} MiB a {kind} file may have")
    return target


def read_capped(path: str | Path, root: str | Path, kind: str) -> bytes:
    """The bytes of a file that passed :func:`checked_file` (read at most ``CAPS[kind]`` + 1 bytes, so
    a file that grows meanwhile cannot take more)."""
    target = checked_file(path, root, kind)
    with open(target, "rb") as fh:
        data = fh.read(CAPS[kind] + 1)
    if len(data) > CAPS[kind]:
        raise damaged(path, f"above the {CAPS[kind] // MIB} MiB a {kind} file may have")
    return data


def _npy_header(member) -> tuple[tuple[int, ...], np.dtype]:  # noqa: ANN001 - a binary file object
    version = np.lib.format.read_magic(member)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, _, dtype = read(member)
    return shape, dtype


def npz_members(path: Path, advice: str) -> None:
    """Check an ``.npz`` before loading it: every member is an ``.npy`` whose header declares no more
    bytes than the member holds (a header claiming 5e9 floats is damaged, not an out-of-memory)."""
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if info.file_size > CAPS["arrays"]:
                    raise damaged(path, f"member {info.filename!r} unpacks to {info.file_size:,} bytes", advice)
                with archive.open(info) as member:
                    shape, dtype = _npy_header(member)
                if dtype.hasobject:
                    raise damaged(path, f"member {info.filename!r} holds Python objects", advice)
                declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
                if declared > info.file_size:
                    raise damaged(path, f"member {info.filename!r} declares shape {tuple(shape)} "
                                        f"({declared:,} bytes) in {info.file_size:,} bytes", advice)
    except VisRuntimeError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, NotImplementedError) as exc:
        text = str(exc).splitlines()[0][:80] if str(exc) else type(exc).__name__
        raise damaged(path, f"not a readable .npz: {text}", advice) from None
