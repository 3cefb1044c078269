"""Releasing a thread's idle OpenMP team (specfuse_core.openmp): the team's worker threads end, the
thread computes again afterwards with the same results, and the engine releases after its rounds and
before a thread waits (the slowdown it prevents is measured in benchmarks, not here)."""

from __future__ import annotations

import os
import threading
import time

import pytest
import torch

from specfuse_core import SpecFuse, openmp
from specfuse_core.openmp import release_openmp_workers

from .test_batched_rounds import PROMPTS, TOKENS, _concurrently

needs_libgomp = pytest.mark.skipif(openmp._pause_function() is None, reason="no libgomp loaded in this process")


def _os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


@needs_libgomp
@pytest.mark.skipif(torch.get_num_threads() < 2, reason="one intra-op thread: no OpenMP team to release")
def test_a_released_team_ends_and_the_thread_computes_again_with_the_same_results():
    values = torch.randn(4_000_000)  # large enough for an elementwise op to run in parallel
    expected = values.exp()
    seen: dict[str, object] = {}

    def body() -> None:  # a fresh thread, so the main thread's team is left alone
        before = _os_threads()
        first = values.exp()  # starts this thread's team: its workers are new OS threads
        seen["team"] = _os_threads() - before
        seen["released"] = release_openmp_workers()
        deadline = time.monotonic() + 2.0
        while _os_threads() > before and time.monotonic() < deadline:
            time.sleep(0.01)
        seen["left"] = _os_threads() - before
        seen["same"] = torch.equal(first, expected) and torch.equal(values.exp(), expected)  # a new team, same bits
        seen["threads"] = torch.get_num_threads()

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    assert seen["team"] >= 1 and seen["released"] is True
    assert seen["left"] == 0  # the team's workers ended
    assert seen["same"] is True and seen["threads"] == torch.get_num_threads()


def test_a_thread_without_a_team_and_repeated_calls_are_harmless():
    results: list[bool] = []
    thread = threading.Thread(target=lambda: results.extend([release_openmp_workers(), release_openmp_workers()]))
    thread.start()
    thread.join()
    assert results[0] == results[1] == (openmp._pause_function() is not None)


def test_the_engine_releases_after_each_round_and_before_a_thread_waits(random_members, monkeypatch):
    from specfuse_core import pooled_scoring, scheduler

    calls: list[str] = []
    monkeypatch.setattr(scheduler, "release_openmp_workers", lambda: calls.append(threading.current_thread().name) or True)
    monkeypatch.setattr(pooled_scoring, "release_openmp_workers", lambda: calls.append(threading.current_thread().name) or True)
    ensemble = SpecFuse([random_members["llama"], random_members["qwen2"]])
    alone = [ensemble.generate(p, max_new_tokens=TOKENS) for p in PROMPTS[:1]]
    lone_rounds = len(alone[0].trace.rounds)
    assert len(calls) >= lone_rounds  # at least once per round of a lone request
    calls.clear()
    together = _concurrently(ensemble, PROMPTS[:3])
    rounds = sum(len(r.trace.rounds) for r in together)
    assert len(calls) >= rounds
    assert any(name.startswith("specfuse-round-") for name in calls)  # a pooled round that waits for its turn released too


@needs_libgomp
def test_a_lookup_before_pytorch_loads_is_not_kept():
    """A remote-only ensemble may look before PyTorch (and its libgomp) is loaded: the next lookup,
    once PyTorch is in, must find the runtime."""
    import subprocess
    import sys

    script = (
        "import sys; import specfuse_core.openmp as o\n"
        "assert 'torch' not in sys.modules and o._pause_function() is None and not o._found\n"
        "import torch\n"
        "assert o.release_openmp_workers() is True and o._found and o._found[0] is not None\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
