"""Reliability on the real tiny preset (three real models): concurrency and fault injection.

Short prompts and 8-token answers (two rounds of 4-token segments) keep this cheap on a CPU. The scale
(8 threads, 8 astream consumers, many requests) is tested on random-weight members in
test_reliability_concurrency.py / test_reliability_faults.py; here each property runs once per case on
the real models (different architectures and tokenizers), which is what these tests add.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from specfuse_core import EnsembleConfig, SpecFuse

from .reliability_fakes import WrappedMember, kv_length

pytestmark = pytest.mark.integration

FINISH = {"stop", "length", "stop_sequence", "timeout"}
# Prompts whose answers take more than one segment, so every request runs at least two rounds.
LONG_ANSWERS = [
    "List five fruits, one per line, with a short description of each.",
    "Explain how a bicycle works in a few sentences.",
    "Describe the water cycle step by step.",
    "Give three tips for learning a new language.",
    "Write a short story about a dragon.",
]


def _key(result):
    return result.text, result.finish_reason, [r.winner_member for r in result.trace.rounds]


SHORT = dict(max_new_tokens=8, segment_tokens=4)  # two rounds: requests really interleave


@pytest.mark.slow
def test_concurrent_threads_and_astream_consumers_match_their_sequential_results(tiny_ensemble):
    """Two threads and two astream consumers at once on one ensemble (four requests interleaving round
    by round): each gets what it gets alone."""
    prompts = LONG_ANSWERS[:2]
    expected = [_key(tiny_ensemble.generate(p, **SHORT)) for p in prompts]
    assert all(len(k[2]) >= 2 for k in expected), "every request must take at least two rounds"
    from_threads: list = [None] * len(prompts)

    def work(i: int) -> None:
        from_threads[i] = _key(tiny_ensemble.generate(prompts[i], **SHORT))

    async def consume(i: int):
        stream = tiny_ensemble.astream(prompts[i], **SHORT)
        texts = [event.text async for event in stream]
        result = stream.result()
        assert "".join(texts) == result.text
        return _key(result)

    async def consumers():
        return await asyncio.wait_for(asyncio.gather(*(consume(i) for i in range(len(prompts)))), 900)

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(len(prompts))]
    for thread in threads:
        thread.start()
    from_tasks = asyncio.run(consumers())
    for thread in threads:
        thread.join(900)
    assert not any(t.is_alive() for t in threads), "deadlock"
    assert from_threads == expected
    assert from_tasks == expected


@pytest.mark.slow
def test_a_member_failing_at_any_point_never_breaks_a_request(tiny_ensemble):
    """Each of the three members in turn raises at its 1st, 2nd or 3rd call (the draft, score or accept
    of round 1, or the draft of round 2 when round 1 needed no scoring): 9 requests. Every request
    completes with well-formed output and reports the fault. (This used to draw 20 random cases of the
    same 9, 12-token answers: 460 s under load; the random-weight fault tests cover each phase and
    position exhaustively.)"""
    members = tiny_ensemble.members
    config = EnsembleConfig(**SHORT)
    phases = set()
    for k, (victim, fail_at) in enumerate((v, f) for v in range(len(members)) for f in (1, 2, 3)):
        wrapped = WrappedMember(members[victim], fail_at=fail_at)
        ensemble = SpecFuse([wrapped if i == victim else m for i, m in enumerate(members)], config)
        stream = ensemble.stream(LONG_ANSWERS[k % len(LONG_ANSWERS)])
        events = list(stream)
        result = stream.result()
        case = f"request {k}: {wrapped.name} failing at call {fail_at}"

        assert result.text.strip(), case
        assert "".join(e.text for e in events) == result.text, case
        assert "\ufffd" not in result.text, case
        result.text.encode("utf-8")
        assert result.finish_reason in FINISH and events[-1].finish_reason == result.finish_reason, case
        assert result.usage.completion_tokens > 0, case

        session = wrapped.sessions[-1]
        assert session.fired is not None, case
        (fault,) = result.trace.faults
        assert (fault.member, fault.phase) == (wrapped.name, session.fired[0]), case
        assert fault.error.startswith("InjectedFault: "), case
        assert [e.round for e in events if e.faults] == [fault.round], case
        assert all(wrapped.name not in r.active_members for r in result.trace.rounds if r.round > fault.round), case
        assert session.closed and kv_length(session) == 0, case
        phases.add(fault.phase)
    assert phases == {"draft", "score", "accept"}  # faults landed in every phase
    # and the shared members are untouched: the plain ensemble answers as before
    assert tiny_ensemble.generate(LONG_ANSWERS[0], **SHORT).trace.faults == []
