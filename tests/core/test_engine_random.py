"""Engine behaviour on fast random-weight members that use different real tokenizers."""

from __future__ import annotations

import asyncio
import json

import pytest
import torch

from specfuse_core import (
    ContextWindowExceededError,
    DuplicateMemberError,
    EnsembleConfig,
    InvalidConversationError,
    SpecFuse,
)

QUESTION = [{"role": "user", "content": "Name three colours."}]


@pytest.fixture(scope="module")
def pair(random_members):
    return [random_members["llama"], random_members["qwen2"]]


def test_stream_concatenates_to_result_and_is_deterministic(pair):
    ensemble = SpecFuse(pair, EnsembleConfig(max_new_tokens=30, segment_tokens=6))
    stream = ensemble.stream(QUESTION)
    events = list(stream)
    result = stream.result()
    assert events and "".join(e.text for e in events) == result.text
    assert len(events) == len(result.trace.rounds)
    assert events[-1].finish_reason == result.finish_reason
    assert all(e.finish_reason is None for e in events[:-1])
    assert "\ufffd" not in result.text
    again = ensemble.generate(QUESTION)
    assert again.text == result.text
    json.loads(result.trace.model_dump_json())  # the trace serialises


def test_max_new_tokens_counted_in_first_member_tokens(pair):
    ensemble = SpecFuse(pair, EnsembleConfig(segment_tokens=7))
    result = ensemble.generate(QUESTION, max_new_tokens=11)
    assert result.finish_reason == "length"
    assert 8 <= result.usage.completion_tokens <= 11  # a cut can only lose a partial character's bytes


def test_every_member_drafts_and_verifies(pair):
    result = SpecFuse(pair, EnsembleConfig(max_new_tokens=20)).generate(QUESTION)
    for name in ("llama", "qwen2"):
        usage = result.usage.members[name]
        assert usage.drafted_tokens > 0 and usage.forward_calls > 0
    scored_rounds = [r for r in result.trace.rounds if r.verifiers]
    for r in scored_rounds:
        assert set(r.verifiers) == {"llama", "qwen2"}
        assert all(set(c.mean_logprobs) == {"llama", "qwen2"} for c in r.candidates)


def test_stop_string_is_cut_and_never_streamed(pair):
    ensemble = SpecFuse(pair, EnsembleConfig(max_new_tokens=40))
    free = ensemble.generate(QUESTION).text
    assert len(free) > 6
    stop = free[3:6]  # a string the unconstrained answer contains, likely across a segment cut
    stream = ensemble.stream(QUESTION, stop=[stop])
    streamed = "".join(e.text for e in stream)
    result = stream.result()
    assert result.finish_reason == "stop_sequence"
    assert result.text == free[: free.index(stop)] == streamed
    assert stop not in streamed


def test_single_member_equals_plain_greedy_generate(random_members):
    member = random_members["qwen2"]
    ensemble = SpecFuse([member], EnsembleConfig(max_new_tokens=25, segment_tokens=4))
    stream = ensemble.stream(QUESTION)
    list(stream)
    result = stream.result()
    prompt = member.prompt_ids(QUESTION)
    with torch.inference_mode():
        plain = member.model.generate(
            torch.tensor([prompt]), max_new_tokens=25, do_sample=False, eos_token_id=sorted(member.stop_token_ids), pad_token_id=0
        )[0, len(prompt) :].tolist()
    plain = [t for t in plain if t not in member.stop_token_ids]
    session = stream.request.sessions["qwen2"]
    valid = _valid_utf8_run(member, plain)  # plain decoding emits a stray byte the draft refuses
    assert 0 < valid < len(plain)
    assert session.response_ids[:valid] == plain[:valid]
    assert len(session.response_ids) >= 21  # at most one partial character's tokens held back at the cap
    assert "\ufffd" not in result.text
    assert result.trace.rounds[0].verifiers == []  # one member: no verification


def _valid_utf8_run(member, tokens: list[int]) -> int:
    """How many of ``tokens`` spell valid UTF-8 (or the start of it) before one breaks it for good."""
    pending = b""
    for count, token in enumerate(tokens):
        pending = member.tokens.token_bytes.follows(pending, token)
        if pending is None:
            return count
    return len(tokens)


def test_sampling_is_seeded(pair):
    ensemble = SpecFuse(pair, EnsembleConfig(max_new_tokens=16, temperature=1.0, top_p=0.9, top_k=50))
    a = ensemble.generate(QUESTION, seed=7).text
    b = ensemble.generate(QUESTION, seed=7).text
    c = ensemble.generate(QUESTION, seed=8).text
    assert a == b
    assert a != c


def test_async_stream_matches_sync(pair):
    ensemble = SpecFuse(pair, EnsembleConfig(max_new_tokens=20))
    expected = ensemble.generate(QUESTION).text

    async def collect():
        stream = ensemble.astream(QUESTION)
        parts = [e.text async for e in stream]
        return "".join(parts), stream.result().text, (await ensemble.agenerate(QUESTION)).text

    streamed, final, generated = asyncio.run(collect())
    assert streamed == final == generated == expected


def test_duplicate_member_names_are_rejected(random_members):
    with pytest.raises(DuplicateMemberError, match="llama"):
        SpecFuse([random_members["llama"], random_members["llama"]])


def test_bad_conversation_is_rejected_before_any_work(pair):
    ensemble = SpecFuse(pair)
    for bad in ([], [{"role": "robot", "content": "x"}], [{"role": "user", "content": None}], None):
        with pytest.raises(InvalidConversationError):
            ensemble.stream(bad)


def test_context_window_error_names_member_and_excess(random_members):
    ensemble = SpecFuse([random_members["llama"], random_members["qwen2"]], EnsembleConfig(max_new_tokens=8))
    long_prompt = "word " * 5000
    with pytest.raises(ContextWindowExceededError) as info:
        ensemble.generate(long_prompt)
    assert info.value.member == "llama" and info.value.excess > 0
    assert "llama" in str(info.value) and "skip_member" in str(info.value)


def test_skip_member_lets_a_member_sit_out(random_members):
    small = random_members["llama"]
    big = random_members["qwen2"]
    small_window = small.context_window
    small.context_window = 64
    try:
        ensemble = SpecFuse([small, big], EnsembleConfig(max_new_tokens=8, context_overflow="skip_member"))
        result = ensemble.generate("word " * 60)
    finally:
        small.context_window = small_window
    assert "llama" in result.trace.skipped
    assert set(result.usage.members) == {"qwen2"}


def test_model_exit_drops_members_and_saves_calls(random_members):
    members = [random_members["llama"], random_members["qwen2"], random_members["gemma3"]]
    base = EnsembleConfig(max_new_tokens=60, segment_tokens=5, max_rounds=12)
    off = SpecFuse(members, base).generate(QUESTION)
    on = SpecFuse(members, base.with_overrides(model_exit=True, exit_warmup_rounds=2, exit_threshold=0.34)).generate(QUESTION)
    assert on.trace.exited
    assert len(on.trace.exited) <= 2  # min_members=1 keeps one
    def calls_per_round(result):
        return result.usage.forward_calls / len(result.trace.rounds)

    assert calls_per_round(on) < calls_per_round(off)
    assert set(on.trace.rounds[-1].active_members).isdisjoint(on.trace.exited)
