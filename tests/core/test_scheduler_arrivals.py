"""The round scheduler waits briefly for requests being opened, so requests started together share
their first round; a lone request never waits. Scheduler-only tests (no models): rounds are stand-ins."""

from __future__ import annotations

import asyncio
import gc
import threading
import time

import pytest

from specfuse_core import SpecFuse
from specfuse_core.errors import InvalidConversationError
from specfuse_core.scheduler import RoundScheduler

LONG_GATHER_S = 5.0  # far longer than any step here: a wait shows up as seconds, not milliseconds


class _StandInRequest:
    """What the scheduler touches of a request: ``done`` and ``step()``."""

    def __init__(self) -> None:
        self.done = False
        self.steps = 0

    def step(self) -> None:
        self.steps += 1
        self.done = True
        return None


def _scheduler(batch_sizes: list[int]) -> RoundScheduler:
    return RoundScheduler(max_batch=8, prepare=lambda requests: batch_sizes.append(len(requests)),
                          gather_s=LONG_GATHER_S, pool_scoring=False)


def _in_thread(scheduler: RoundScheduler, request: _StandInRequest) -> threading.Thread:
    thread = threading.Thread(target=scheduler.run, args=(request,))
    thread.start()
    return thread


def test_a_request_being_opened_joins_the_first_round_of_one_already_queued():
    sizes: list[int] = []
    scheduler = _scheduler(sizes)
    first, second = _StandInRequest(), _StandInRequest()
    scheduler.announce()
    scheduler.announce()  # two requests being opened
    scheduler.arrived(first)  # the second is still being validated and routed
    leader = _in_thread(scheduler, first)
    time.sleep(0.2)  # the first round would have run alone by now without the wait
    assert first.steps == 0
    scheduler.arrived(second)
    follower = _in_thread(scheduler, second)
    leader.join(LONG_GATHER_S)
    follower.join(LONG_GATHER_S)
    assert sizes == [2] and scheduler.batches == 1
    assert first.steps == second.steps == 1


def test_without_the_announcement_the_first_round_runs_alone():
    sizes: list[int] = []
    scheduler = _scheduler(sizes)
    first = _StandInRequest()
    started = time.perf_counter()
    scheduler.run(first)  # nobody is being opened or expected back: no wait
    assert time.perf_counter() - started < LONG_GATHER_S / 5
    assert first.steps == 1 and sizes == [] and scheduler.batches == 1


def test_a_lone_request_opened_and_stepped_does_not_wait_for_itself():
    scheduler = _scheduler([])
    request = _StandInRequest()
    scheduler.announce()
    scheduler.arrived(request)
    started = time.perf_counter()
    scheduler.run(request)
    assert time.perf_counter() - started < LONG_GATHER_S / 5
    assert scheduler._arriving == 0


def test_an_opening_that_fails_is_not_waited_for():
    scheduler = _scheduler([])
    scheduler.announce()
    scheduler.arrived(None)
    started = time.perf_counter()
    scheduler.run(_StandInRequest())
    assert time.perf_counter() - started < LONG_GATHER_S / 5
    assert scheduler._arriving == 0


def test_an_abandoned_request_is_waited_for_once_at_most():
    scheduler = RoundScheduler(max_batch=8, prepare=lambda requests: None, gather_s=0.3, pool_scoring=False)
    abandoned = _StandInRequest()  # still held by its owner
    scheduler.announce()
    scheduler.arrived(abandoned)  # opened, then never stepped
    started = time.perf_counter()
    scheduler.run(_StandInRequest())
    waited = time.perf_counter() - started
    started = time.perf_counter()
    scheduler.run(_StandInRequest())
    assert waited >= 0.25  # the first batch waited for it, up to gather_s
    assert time.perf_counter() - started < 0.25  # and no batch after that


def test_a_request_dropped_by_its_owner_is_not_waited_for():
    scheduler = RoundScheduler(max_batch=8, prepare=lambda requests: None, gather_s=LONG_GATHER_S, pool_scoring=False)
    dropped = _StandInRequest()
    scheduler.announce()
    scheduler.arrived(dropped)  # opened, then let go without a round
    del dropped
    gc.collect()
    started = time.perf_counter()
    scheduler.run(_StandInRequest())
    assert time.perf_counter() - started < LONG_GATHER_S / 5


def test_the_engine_announces_every_opening_and_balances_failed_ones(random_members):
    ensemble = SpecFuse([random_members["llama"]])
    with pytest.raises(InvalidConversationError):
        ensemble.start([])
    assert ensemble._rounds._arriving == 0
    request = ensemble.start("Hello.", max_new_tokens=2)
    assert ensemble._rounds._arriving == 0 and request in ensemble._rounds._returning
    ensemble.step(request)
    assert request not in ensemble._rounds._returning
    request.close()


def test_a_first_round_settles_for_requests_opened_right_after_it():
    """Async callers open requests one after another in the event loop's thread: the first one's round
    can queue before the next is announced. A batch holding a first round waits ``settle_s`` after the
    last arrival."""
    sizes: list[int] = []
    scheduler = RoundScheduler(max_batch=8, prepare=lambda requests: sizes.append(len(requests)),
                               gather_s=LONG_GATHER_S, pool_scoring=False, settle_s=1.0)
    first, second = _StandInRequest(), _StandInRequest()
    scheduler.announce()
    scheduler.arrived(first)
    leader = _in_thread(scheduler, first)
    time.sleep(0.2)  # nothing announced yet: only the settling keeps the first round waiting
    assert first.steps == 0
    scheduler.announce()
    scheduler.arrived(second)
    follower = _in_thread(scheduler, second)
    leader.join(LONG_GATHER_S)
    follower.join(LONG_GATHER_S)
    assert sizes == [2] and first.steps == second.steps == 1


def test_later_rounds_do_not_settle():
    scheduler = RoundScheduler(max_batch=8, prepare=lambda requests: None, gather_s=LONG_GATHER_S, pool_scoring=False, settle_s=1.0)
    request = _StandInRequest()
    scheduler.announce()
    scheduler.arrived(request)
    started = time.perf_counter()
    scheduler.run(request)  # its first round settles once
    first_round = time.perf_counter() - started
    request.done = False
    started = time.perf_counter()
    scheduler.run(request)  # a later round of a lone request starts at once
    assert first_round >= 0.9 and time.perf_counter() - started < 0.5


def test_async_requests_started_together_run_in_one_batch(random_members):
    """Eight ``agenerate`` calls at once: more than the event loop's default pool has threads on a
    2-core machine (cores + 4), and opened one after another in the loop's thread."""
    ensemble = SpecFuse([random_members["llama"], random_members["qwen2"]])
    sizes: list[int] = []
    original = ensemble._rounds.prepare
    ensemble._rounds.prepare = lambda requests: (sizes.append(len(requests)), original(requests))
    prompts = [f"Item {i}." for i in range(8)]

    async def together():
        return await asyncio.gather(*(ensemble.agenerate(p, max_new_tokens=4) for p in prompts))

    results = asyncio.run(together())
    assert sizes and sizes[0] == 8
    assert all(r.usage.completion_tokens > 0 for r in results)
