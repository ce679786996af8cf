"""The dashboard's other processes end with it, however it ends.

- A job process ignores Ctrl+C (the terminal sends SIGINT to the whole process group; the server
  stops its jobs itself, so no job prints a KeyboardInterrupt traceback), dies at once on SIGTERM,
  and exits within :data:`WATCH_EVERY_S` when its server is gone (``kill -9`` included: it watches
  its parent's pid).
- :func:`stop_processes` ends running jobs when the server stops (SIGTERM first, SIGKILL after a
  grace period), so a stop never waits for a job to finish.
- :func:`remove_when_gone` removes a temporary folder once the server and every job forked from it
  have exited, however they ended: a tiny process waits for the end of a pipe they all hold.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable

__all__ = ["job_process", "remove_when_gone", "stop_processes", "WATCH_EVERY_S"]

#: How often a job process checks that its server still runs (seconds).
WATCH_EVERY_S = 0.25
_JANITORS: list[subprocess.Popen] = []   # referenced while the server runs (no "still running" warning)


def job_process(parent: int, target: Callable[..., Any], args: Iterable[Any]) -> None:
    """The body of a job process forked from the server `parent`: signals as a job wants them, a
    watcher that exits when `parent` is gone, then ``target(*args)``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)    # Ctrl+C is the server's to handle
    signal.signal(signal.SIGTERM, signal.SIG_DFL)   # fork copied the server's handler: a job just ends
    threading.Thread(target=_exit_with, args=(parent,), name="vis-watch-server", daemon=True).start()
    target(*args)


def _exit_with(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(WATCH_EVERY_S)
    os._exit(1)   # the server is gone (its children are handed to init): nobody reads this job's result


def stop_processes(processes: Iterable[Any], grace_s: float = 2.0) -> None:
    """End `processes` (``multiprocess.Process`` objects): SIGTERM, then SIGKILL for any still alive
    after `grace_s` in all."""
    alive = [p for p in processes if p.is_alive()]
    for process in alive:
        process.terminate()
    deadline = time.monotonic() + grace_s
    for process in alive:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join(1)


_JANITOR = "import os, shutil, sys\nwhile os.read(0, 4096):\n    pass\nshutil.rmtree(sys.argv[1], ignore_errors=True)\n"


def remove_when_gone(path: Path) -> None:
    """Remove the folder `path` once this process and every process forked from it have exited
    (``kill -9`` included). A small process in its own session (Ctrl+C does not reach it) reads a
    pipe whose write end this process holds and forks pass on; when the last holder is gone it
    reads the end of the pipe and removes the folder."""
    read, write = os.pipe()
    try:
        janitor = subprocess.Popen([sys.executable, "-I", "-S", "-c", _JANITOR, str(path)], stdin=read,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                                   close_fds=True)
    except OSError:
        os.close(write)   # no janitor: the exit handler still removes the folder at a normal exit
        return
    finally:
        os.close(read)
    _JANITORS.append(janitor)   # `write` stays open for this process's lifetime (not inherited by exec)
