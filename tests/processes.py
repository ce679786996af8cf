"""Child processes that a test stops with Ctrl+C."""
from __future__ import annotations

import signal

__all__ = ["sigint_default"]


def sigint_default() -> None:
    """A ``preexec_fn`` giving the child SIGINT's default disposition, so Python in it turns Ctrl+C
    (SIGINT) into KeyboardInterrupt even when the tests run in a background job (``cmd &`` starts
    processes with SIGINT ignored, and Python then never installs its handler)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
