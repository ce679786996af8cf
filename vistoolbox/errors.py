"""Errors with one-line messages, mapped by the CLI to exit codes (2 = usage, 1 = runtime)."""
from __future__ import annotations

import difflib
import errno
import re
from typing import Iterable, Mapping

__all__ = ["VisError", "VisRuntimeError", "VisUsageError", "closest", "from_os_error", "unknown"]


class VisError(Exception):
    """Base class: an expected failure with a one-line, user-facing message.

    Parameter names in the message are marked with backticks (``"`k` must be at least 1, got 0"``):
    ``str(error)`` shows them as they are (``k must be …``, for Python callers) and a front end
    shows its own spelling with :meth:`renamed` (the CLI: ``--k must be …``).
    """

    exit_code = 1

    @property
    def params(self) -> tuple[str, ...]:
        """The parameter names the message mentions, in order."""
        return tuple(dict.fromkeys(_PARAM.findall(self.args[0] if self.args else "")))

    def renamed(self, names: Mapping[str, str]) -> str:
        """The message with each marked parameter shown as ``names[param]`` (unknown ones as they are)."""
        text = str(self.args[0]) if self.args else ""
        return _PARAM.sub(lambda m: names.get(m.group(1), m.group(1)), text)

    def __str__(self) -> str:
        return self.renamed({})


#: A parameter name marked in a message: `name`.
_PARAM = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)`")


class VisUsageError(VisError, ValueError):
    """The user asked for something that does not exist or is not valid (exit code 2)."""

    exit_code = 2


class VisRuntimeError(VisError, RuntimeError):
    """Valid request that could not be carried out, e.g. weights that cannot be fetched (exit 1)."""

    exit_code = 1


def closest(word: str, choices: Iterable[str], n: int = 5) -> list[str]:
    """The `n` names in `choices` closest to `word` (difflib ratio), best first."""
    choices = list(choices)
    hits = difflib.get_close_matches(word, choices, n=n, cutoff=0.4)
    if not hits:
        hits = [c for c in choices if word.lower() in c.lower()][:n]
    return hits


def unknown(kind: str, word: str, choices: Iterable[str], limit: int = 40) -> VisUsageError:
    """A usage error for an unknown name that lists close matches, or the valid names."""
    choices = list(choices)
    near = closest(word, choices)
    if near:
        return VisUsageError(f"unknown {kind} {word!r}; did you mean: {', '.join(near)}?")
    shown = ", ".join(choices[:limit]) + (" …" if len(choices) > limit else "")
    return VisUsageError(f"unknown {kind} {word!r}; valid: {shown}")


#: OSError numbers that mean "the path you gave is wrong" (usage, exit 2) and what to say about them;
#: every other OSError is the environment's (exit 1): disk full, read-only, permissions, I/O.
_PATH_ERRORS = {
    errno.ENOENT: "does not exist",
    errno.ENOTDIR: "cannot be used: a part of the path is a file, not a folder",
    errno.EEXIST: "cannot be used: a file is in the way where a folder is needed",
    errno.EISDIR: "is a folder; give a file name",
    errno.ENAMETOOLONG: "is too long a path",
}
_ENVIRONMENT_ERRORS = {
    errno.ENOSPC: "no space left on the device; free some space or write elsewhere",
    errno.EDQUOT: "disk quota exceeded; free some space or write elsewhere",
    errno.EROFS: "the file system is read-only; write elsewhere",
    errno.EACCES: "permission denied; choose a location you may use",
    errno.EPERM: "operation not permitted; choose a location you may use",
}


def from_os_error(exc: OSError) -> VisError:
    """A one-line error for an OSError: a wrong path is a usage error (exit 2), a full, read-only or
    forbidden location is a runtime error (exit 1)."""
    where = exc.filename if exc.filename is not None else ""
    if exc.errno in _PATH_ERRORS:
        return VisUsageError(f"{str(where)!r} {_PATH_ERRORS[exc.errno]}")
    reason = _ENVIRONMENT_ERRORS.get(exc.errno) if exc.errno is not None else None
    reason = reason or (exc.strerror or str(exc) or type(exc).__name__)
    return VisRuntimeError(f"cannot use {str(where)!r}: {reason}" if where else reason)
