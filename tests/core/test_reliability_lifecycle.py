"""Request lifecycle: timeouts, abandoned streams and memory.

A request must end on time with nothing lost, stop computing within one round of being abandoned
(dropped, closed, or its asyncio task cancelled), and leave no keys/values or request objects behind.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import tracemalloc
import weakref

import pytest

from specfuse_core import EnsembleConfig, SpecFuse

from .reliability_fakes import ScriptedMember, WrappedMember, kv_length, released

QUESTION = [{"role": "user", "content": "Name three colours."}]
LONG = EnsembleConfig(max_new_tokens=200, segment_tokens=4)


@pytest.fixture(scope="module")
def trio(random_members):
    return [random_members["llama"], random_members["qwen2"], random_members["gemma3"]]


def _words(name: str, count: int = 60) -> ScriptedMember:
    return ScriptedMember(name, [f"w{i} " for i in range(count)], finish=False)


# ---------------------------------------------------------------- timeout
def test_timeout_ends_the_request_between_rounds_with_the_text_so_far():
    slow = WrappedMember(_words("a"), delay=0.05)
    ensemble = SpecFuse([slow, _words("b")], EnsembleConfig(timeout_s=0.3, max_rounds=60))
    started = time.monotonic()
    stream = ensemble.stream(QUESTION)
    events = list(stream)
    elapsed = time.monotonic() - started
    result = stream.result()
    assert result.finish_reason == "timeout" == events[-1].finish_reason
    rounds = len(result.trace.rounds)
    assert 2 <= rounds <= 8  # about 0.3 s / 0.05 s per round: checked between rounds, never mid-round
    assert "".join(e.text for e in events) == result.text == "".join(f"w{i} " for i in range(rounds))
    assert elapsed < 0.3 + 2.0  # generous: the machine may be busy
    assert released(stream.request)


def test_timeout_between_rounds_releases_held_back_text():
    """Text held back because it could start a stop string is released when time runs out."""
    member = ScriptedMember("a", ["Hello wor", "ld? and on"], finish=False)
    stream = SpecFuse([member], EnsembleConfig(timeout_s=0.2, stop=["world!"])).stream(QUESTION)
    first = next(stream)
    assert first.text == "Hello " and first.finish_reason is None  # "wor" could become "world!"
    time.sleep(0.3)
    last = next(stream)
    assert (last.text, last.segment, last.member, last.finish_reason) == ("wor", "", "", "timeout")
    assert next(stream, None) is None
    result = stream.result()
    assert result.text == "Hello wor" and result.finish_reason == "timeout"


def test_timeout_before_the_first_round_runs_nothing():
    member = WrappedMember(_words("a"))
    stream = SpecFuse([member], EnsembleConfig(timeout_s=0.05)).stream(QUESTION)
    time.sleep(0.1)
    events = list(stream)
    assert [(e.text, e.finish_reason) for e in events] == [("", "timeout")]
    assert member.draft_calls == 0
    result = stream.result()
    assert (result.text, result.finish_reason, result.usage.completion_tokens) == ("", "timeout", 0)


def test_timeout_on_real_members_frees_their_caches(trio):
    slow = WrappedMember(trio[0], delay=0.6)  # the first round outlasts the timeout
    stream = SpecFuse([slow, trio[1]], LONG).stream(QUESTION, timeout_s=0.5)
    events = list(stream)
    assert len(events) == 1 and events[0].finish_reason == "timeout" and events[0].member
    assert events[0].text == stream.result().text
    assert released(stream.request)


# ---------------------------------------------------------------- abandoned streams
def test_dropping_a_stream_after_break_frees_its_caches(trio):
    stream = SpecFuse(trio, LONG).stream(QUESTION)
    request = stream.request
    for _ in stream:
        break
    assert any(kv_length(s) for s in request.sessions.values())  # mid-request: caches are live
    del stream
    gc.collect()
    assert request.done and released(request)


def test_close_stops_the_stream_and_frees_its_caches(trio):
    counted = WrappedMember(trio[0])
    stream = SpecFuse([counted, trio[1]], LONG).stream(QUESTION)
    next(stream)
    calls = counted.draft_calls
    stream.close()
    assert next(stream, None) is None
    assert counted.draft_calls == calls and released(stream.request)
    with SpecFuse([counted, trio[1]], LONG).stream(QUESTION) as scoped:
        next(scoped)
    assert released(scoped.request)


def test_close_from_another_thread_returns_at_once_and_the_round_in_flight_frees(trio):
    slow = WrappedMember(trio[0], delay=0.4)
    stream = SpecFuse([slow, trio[1]], LONG).stream(QUESTION)
    worker = threading.Thread(target=lambda: next(stream, None))
    worker.start()
    deadline = time.monotonic() + 30
    while slow.draft_calls == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    stream.close()  # a round is running: close only marks the request
    assert time.monotonic() - started < 0.2
    worker.join(60)
    assert not worker.is_alive()
    assert released(stream.request)  # the round finished, then freed the caches
    assert next(stream, None) is None and slow.draft_calls == 1


def test_cancelling_an_astream_task_stops_compute_within_one_round(trio):
    slow = WrappedMember(trio[0], delay=0.2)
    ensemble = SpecFuse([slow, trio[1]], LONG)

    async def scenario():
        stream = ensemble.astream(QUESTION)
        seen = []

        async def consume():
            async for event in stream:
                seen.append(event)

        task = asyncio.create_task(consume())
        while not seen:
            await asyncio.sleep(0.01)
        calls_at_cancel = slow.draft_calls
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        deadline = time.monotonic() + 30
        while not released(stream.request) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.5)  # would a next round start? (it must not)
        return stream.request, calls_at_cancel

    request, calls_at_cancel = asyncio.run(scenario())
    assert request.done and released(request)
    assert slow.draft_calls <= calls_at_cancel + 1  # at most the round in flight
    assert ensemble.generate(QUESTION, max_new_tokens=8).text  # the ensemble's lock was released


def test_abandoned_async_streams_free_their_caches(trio):
    ensemble = SpecFuse(trio, LONG)

    async def scenario():
        dropped = ensemble.astream(QUESTION)
        request = dropped.request
        async for _ in dropped:
            break
        del dropped
        closed = ensemble.astream(QUESTION)
        await closed.__anext__()
        await closed.aclose()
        return request, closed.request

    for request in asyncio.run(scenario()):
        gc.collect()
        assert request.done and released(request)


# ---------------------------------------------------------------- memory
@pytest.mark.parametrize("ending", ["finished", "abandoned"])
def test_keys_and_values_are_freed_when_a_request_ends(trio, ending):
    stream = SpecFuse(trio, LONG).stream(QUESTION, max_rounds=3)
    next(stream)
    buffers = [
        weakref.ref(layer._keys)
        for session in stream.request.sessions.values()
        for layer in session.cache.layers
        if getattr(layer, "_keys", None) is not None
    ]
    assert len(buffers) == 2 * len(trio)  # two layers per random member
    if ending == "finished":
        list(stream)
        assert stream.request.finish_reason is not None
    else:
        next(stream)
        del stream
    gc.collect()
    assert all(ref() is None for ref in buffers)


def test_repeated_requests_do_not_grow_memory(trio):
    ensemble = SpecFuse(trio, EnsembleConfig(max_new_tokens=8, segment_tokens=4))
    prompts = [f"Say something about the number {i}." for i in range(12)]
    for prompt in prompts[:3]:  # warm up: lazy imports, tokenizer and template caches
        ensemble.generate(prompt)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        requests = []
        for prompt in prompts[3:]:
            stream = ensemble.stream(prompt)
            list(stream)
            requests.append(weakref.ref(stream.request))
            del stream
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    assert all(ref() is None for ref in requests), "finished requests are still referenced"
    growth = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert growth < 512 * 1024, f"Python heap grew by {growth} bytes over {len(requests)} requests"
