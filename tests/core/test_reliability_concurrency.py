"""Concurrency: one ensemble (or several sharing members) used from many threads and asyncio tasks.

Each concurrent request must give exactly its sequential (greedy) result: no cross-talk between
requests' caches, token views, settings or faults, and no deadlock.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from specfuse_core import EnsembleConfig, SpecFuse

from .reliability_fakes import WrappedMember, released

PROMPTS = [
    "Name three colours.",
    "What is two plus two?",
    "Write a haiku about rain.",
    "Translate 'good morning' to French.",
    "List some prime numbers.",
    "Who wrote Hamlet?",
    "Describe a cat in one sentence.",
    "請用中文回答：天空是什麼顏色？",
]
# Per-request settings differ too, so a request that picked up another's settings would show.
OVERRIDES = [
    dict(max_new_tokens=10 + 3 * i, segment_tokens=3 + i % 3, stop=["\n\n"] if i % 2 else None) for i in range(len(PROMPTS))
]
JOIN_S = 300  # a deadlock shows up as a thread still alive after this


@pytest.fixture(scope="module")
def trio(random_members):
    return [random_members["llama"], random_members["qwen2"], random_members["gemma3"]]


@pytest.fixture(scope="module")
def ensemble(trio):
    return SpecFuse(trio, EnsembleConfig(max_new_tokens=12, segment_tokens=4))


def _key(result):
    """What must not change under concurrency: text, finish reason, who won each round, usage."""
    return result.text, result.finish_reason, [r.winner_member for r in result.trace.rounds], result.usage.completion_tokens


@pytest.fixture(scope="module")
def sequential(ensemble):
    return [_key(ensemble.generate(p, **o)) for p, o in zip(PROMPTS, OVERRIDES)]


def _interleaved(order: list[int]) -> bool:
    """Some request's rounds were not all back to back: rounds of concurrent requests interleaved."""
    spans = {i: [k for k, j in enumerate(order) if j == i] for i in set(order)}
    return any(positions[-1] - positions[0] + 1 > len(positions) for positions in spans.values())


def _run_threads(work, count: int) -> None:
    errors: list[BaseException] = []

    def guarded(i: int) -> None:
        try:
            work(i)
        except BaseException as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=guarded, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_S)
    assert not any(t.is_alive() for t in threads), "deadlock: a request never finished"
    if errors:
        raise errors[0]


def test_eight_threads_get_their_sequential_results(ensemble, sequential):
    results: list = [None] * len(PROMPTS)
    order: list[int] = []
    order_lock = threading.Lock()
    barrier = threading.Barrier(len(PROMPTS))

    def work(i: int) -> None:
        barrier.wait()
        stream = ensemble.stream(PROMPTS[i], **OVERRIDES[i])
        texts = []
        for event in stream:
            texts.append(event.text)
            with order_lock:
                order.append(i)
        result = stream.result()
        assert "".join(texts) == result.text
        assert released(stream.request)
        results[i] = _key(result)

    _run_threads(work, len(PROMPTS))
    assert results == sequential
    assert _interleaved(order)


def test_eight_astream_consumers_get_their_sequential_results(ensemble, sequential):
    order: list[int] = []

    async def consume(i: int):
        stream = ensemble.astream(PROMPTS[i], **OVERRIDES[i])
        texts = []
        async for event in stream:
            texts.append(event.text)
            order.append(i)
        result = stream.result()
        assert "".join(texts) == result.text
        return _key(result)

    async def everyone():
        return await asyncio.wait_for(asyncio.gather(*(consume(i) for i in range(len(PROMPTS)))), JOIN_S)

    assert asyncio.run(everyone()) == sequential
    assert _interleaved(order)


def test_ensembles_sharing_members_run_side_by_side(trio):
    """Several SpecFuse objects built on the same loaded members run forwards at the same time (one
    lock per ensemble); each request still gets its sequential result."""
    llama, qwen2, gemma3 = trio
    config = EnsembleConfig(max_new_tokens=12, segment_tokens=4)
    ensembles = [SpecFuse(trio, config), SpecFuse([gemma3, llama, qwen2], config), SpecFuse([qwen2, llama], config)]
    jobs = [(ensembles[i % 3], PROMPTS[i]) for i in range(len(PROMPTS))]
    expected = [_key(e.generate(p)) for e, p in jobs]
    results: list = [None] * len(jobs)

    def work(i: int) -> None:
        ensemble, prompt = jobs[i]
        results[i] = _key(ensemble.generate(prompt))

    _run_threads(work, len(jobs))
    assert results == expected


def test_faulty_abandoned_and_timed_out_neighbours_do_not_disturb_a_request(trio, ensemble, sequential):
    """Requests that fail, are abandoned or time out run beside normal ones on the same members;
    the normal ones are unaffected."""
    faulty = SpecFuse([WrappedMember(trio[0], fail_at=2), trio[1], trio[2]], EnsembleConfig(max_new_tokens=12, segment_tokens=4))
    results: dict[int, object] = {}

    def work(i: int) -> None:
        kind = i % 4
        if kind == 0:  # normal
            results[i] = _key(ensemble.generate(PROMPTS[i], **OVERRIDES[i]))
        elif kind == 1:  # a member fails
            result = faulty.generate(PROMPTS[i])
            assert [f.member for f in result.trace.faults] == ["llama"]
        elif kind == 2:  # abandoned after one segment
            stream = ensemble.stream(PROMPTS[i], max_new_tokens=200)
            next(stream)
            stream.close()
        else:  # times out at once
            result = ensemble.generate(PROMPTS[i], timeout_s=1e-6)
            assert result.finish_reason == "timeout"

    _run_threads(work, len(PROMPTS))
    assert {i: results[i] for i in results} == {i: sequential[i] for i in range(0, len(PROMPTS), 4)}
