"""Child processes of the tests: Ctrl+C for them, a free port for their servers."""
from __future__ import annotations

import signal
import socket

__all__ = ["free_port", "sigint_default"]


def sigint_default() -> None:
    """A ``preexec_fn`` giving the child SIGINT's default disposition, so Python in it turns Ctrl+C
    (SIGINT) into KeyboardInterrupt even when the tests run in a background job (``cmd &`` starts
    processes with SIGINT ignored, and Python then never installs its handler)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def free_port() -> int:
    """A localhost port nobody listens on now (servers of parallel test runs never share one)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
