"""A cap on the background jobs one dashboard runs at once. Jobs are separate processes, so the cap
lives on disk, in the cache folder: a running job holds an exclusive lock on one of `limit` slot
files (the system releases it when the process ends, cancelled or killed), and jobs that find
every slot taken wait their turn in a first-come queue of ticket files, told their place. At most
`queue` jobs wait; a job beyond that is refused at once.

A process forked while it holds a slot inherits the lock (flock belongs to the open file), so
slots are taken only inside job processes, never in the server process that forks them."""
from __future__ import annotations

import fcntl
import os
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from vistoolbox.errors import VisRuntimeError

__all__ = ["JobSlots"]


class JobSlots:
    """At most `limit` jobs at once across processes; up to `queue` more wait first come, first served."""

    def __init__(self, folder: str | Path, limit: int = 2, queue: int = 16, poll_s: float = 0.25) -> None:
        self.folder, self.limit, self.queue, self.poll_s = Path(folder), limit, queue, poll_s
        (self.folder / "queue").mkdir(parents=True, exist_ok=True)

    def waiting(self) -> list[Path]:
        """The tickets of the jobs waiting now, oldest first (tickets of ended processes are removed)."""
        tickets = []
        for path in sorted((self.folder / "queue").iterdir()):
            pid = int(path.name.split("-")[1]) if path.name.count("-") >= 2 else -1
            if _alive(pid):
                tickets.append(path)
            else:
                path.unlink(missing_ok=True)  # a job cancelled (killed) while it waited
        return tickets

    def running(self) -> int:
        """How many slots are held now."""
        held = 0
        for index in range(self.limit):
            fd = self._try(index)
            if fd is None:
                held += 1
            else:
                os.close(fd)
        return held

    @contextmanager
    def slot(self, told: Callable[[int, int], None] = lambda place, waiting: None) -> Iterator[None]:
        """Hold a slot for the body; while every slot is taken, wait in the queue and call
        ``told(place, waiting)`` (1-based place) whenever the place changes."""
        if len(self.waiting()) >= self.queue:
            raise VisRuntimeError(f"the dashboard is busy: {self.limit} jobs run and {self.queue} wait already; "
                                  "try again when one has finished")
        ticket = self.folder / "queue" / f"{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        ticket.touch()
        fd, last = None, None
        try:
            while fd is None:
                queue = self.waiting()
                place = queue.index(ticket) + 1 if ticket in queue else 1
                if place == 1:  # first in line: take any free slot
                    fd = next((f for f in map(self._try, range(self.limit)) if f is not None), None)
                if fd is None:
                    if (place, len(queue)) != last:
                        last = (place, len(queue))
                        told(place, len(queue))
                    time.sleep(self.poll_s)
            ticket.unlink(missing_ok=True)
            yield
        finally:
            ticket.unlink(missing_ok=True)
            if fd is not None:
                os.close(fd)  # releases the lock

    def _try(self, index: int) -> int | None:
        """An open, exclusively locked slot file `index`, or None when another job holds it."""
        fd = os.open(self.folder / f"slot-{index}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd


def _alive(pid: int) -> bool:
    """True while process `pid` runs (an ended process that was not yet reaped does not count)."""
    import psutil  # a dependency of Dash's DiskcacheManager

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, ValueError):
        return False
