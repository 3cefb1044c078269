"""A lock that waiting threads get in the order they asked for it.

``threading.Lock`` gives no order: a thread that releases it and asks again at once usually gets it
straight back while the others sleep, so one request's rounds could run back to back and its
neighbours wait for all of them. The ensemble's round lock is a :class:`FairLock`, so concurrent
requests take turns round by round (docs/reliability.md, "Concurrency model").
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any


class FairLock:
    """A FIFO lock: ``release`` hands the lock to the longest-waiting thread."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._held = False
        self._waiters: deque[threading.Lock] = deque()

    def acquire(self) -> None:
        with self._guard:
            if not self._held:
                self._held = True
                return
            gate = threading.Lock()
            gate.acquire()
            self._waiters.append(gate)
        try:
            gate.acquire()  # released by release(): the lock is handed over, still held
        except BaseException:  # e.g. KeyboardInterrupt while waiting: leave the queue without losing the lock
            with self._guard:
                if gate in self._waiters:
                    self._waiters.remove(gate)
                    raise
            self.release()  # it was handed over meanwhile: pass it on
            raise

    def release(self) -> None:
        with self._guard:
            if not self._held:
                raise RuntimeError("release of an unlocked FairLock")
            if self._waiters:
                self._waiters.popleft().release()
            else:
                self._held = False

    def locked(self) -> bool:
        return self._held

    def __enter__(self) -> "FairLock":
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()
