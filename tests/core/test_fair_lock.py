"""The ensemble's round lock hands itself over in arrival order, so concurrent requests take turns
round by round. (With threading.Lock the releasing thread usually took it straight back: on an idle
machine test_eight_threads_get_their_sequential_results saw one request's rounds back to back.)"""

from __future__ import annotations

import threading
import time

import pytest

from specfuse_core.fair_lock import FairLock


def _wait_for(condition, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.001)


def test_waiters_get_the_lock_in_arrival_order():
    lock = FairLock()
    got: list[str] = []
    lock.acquire()
    threads = []
    for name in "BCD":
        thread = threading.Thread(target=lambda n=name: (lock.acquire(), got.append(n), lock.release()))
        thread.start()
        threads.append(thread)
        _wait_for(lambda k=len(threads): len(lock._waiters) == k)  # queued in this order
    lock.release()
    for thread in threads:
        thread.join(5)
    assert got == ["B", "C", "D"] and not lock.locked()


def test_a_thread_asking_again_goes_behind_the_waiters():
    lock = FairLock()
    order: list[str] = []

    def rounds(name: str, count: int) -> None:
        for _ in range(count):
            with lock:
                order.append(name)
                time.sleep(0.002)

    lock.acquire()
    a = threading.Thread(target=rounds, args=("a", 3))
    b = threading.Thread(target=rounds, args=("b", 3))
    a.start()
    _wait_for(lambda: len(lock._waiters) == 1)
    b.start()
    _wait_for(lambda: len(lock._waiters) == 2)
    lock.release()
    a.join(5)
    b.join(5)
    assert order == ["a", "b"] * 3  # turns, not a's rounds back to back


def test_releasing_an_unlocked_lock_raises():
    with pytest.raises(RuntimeError):
        FairLock().release()
