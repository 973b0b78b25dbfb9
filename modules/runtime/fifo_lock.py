"""A lock that is granted in the order it was asked for.

``threading.Lock`` makes no ordering promise, so a busy requester can overtake others.  A1111 wraps its
``queue_lock`` in a FIFO lock (``modules/fifo_lock.py``) so that generation requests run in arrival order; this is
the same idea written from scratch: each ``acquire`` takes a ticket and waits until its ticket is first in line.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from types import TracebackType

__all__ = ["FifoLock"]


class FifoLock:
    """Non-reentrant mutual exclusion, granted first come, first served."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._tickets: deque[object] = deque()
        self._held = False
        self._owner: int | None = None

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Wait for our turn; False if ``blocking`` is off and the lock is taken, or ``timeout`` seconds pass."""
        ticket = object()
        deadline = None if timeout is None or timeout < 0 else time.monotonic() + timeout
        with self._cond:
            if self._held and self._owner == threading.get_ident():
                raise RuntimeError("FifoLock is not reentrant: this thread already holds it "
                                   "(work inside a job already runs under the device lock)")
            if not blocking and (self._held or self._tickets):
                return False
            self._tickets.append(ticket)
            while self._held or self._tickets[0] is not ticket:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    self._tickets.remove(ticket)
                    self._cond.notify_all()
                    return False
                self._cond.wait(remaining)
            self._tickets.popleft()
            self._held = True
            self._owner = threading.get_ident()
            return True

    def release(self) -> None:
        """Hand the lock to the next waiter in line."""
        with self._cond:
            if not self._held:
                raise RuntimeError("release of an unlocked FifoLock")
            self._held = False
            self._owner = None
            self._cond.notify_all()

    def locked(self) -> bool:
        """True while some thread holds the lock."""
        with self._cond:
            return self._held

    def waiting(self) -> int:
        """How many acquirers are in line."""
        with self._cond:
            return len(self._tickets)

    def __enter__(self) -> FifoLock:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
