"""Batched rounds: concurrent requests share drafting passes, and each gets, byte for byte, what it
gets alone; faults, usage and closing stay per request."""

from __future__ import annotations

import json
import threading

import pytest
from pydantic import ValidationError

from specfuse_core import EnsembleConfig, SpecFuse

PROMPTS = [f"Write about item {i}." + " Please be brief." * i for i in range(5)]
TOKENS = 30


@pytest.fixture(scope="module")
def trio(random_members):
    """The three members in batch-invariant mode (padded decode passes of 8 rows): exact identity
    with the lone run is what these tests check. Random weights make near-ties common, so the
    default mode (rows as needed) would differ here now and then; it has its own test below."""
    members = [random_members["llama"], random_members["qwen2"], random_members["gemma3"]]
    before = [m.decode_block for m in members]
    for m in members:
        m.decode_block = 8
    yield members
    for m, block in zip(members, before):
        m.decode_block = block


@pytest.fixture(scope="module")
def sequential(trio):
    ensemble = SpecFuse(trio)
    return [ensemble.generate(p, max_new_tokens=TOKENS) for p in PROMPTS]


def _concurrently(ensemble, prompts, per_request=None, **overrides):
    """Each prompt in its own thread; ``per_request[i]``: overrides for request i only."""
    results = [None] * len(prompts)
    errors = []

    def run(i):
        try:
            own = per_request[i] if per_request else {}
            results[i] = ensemble.generate(prompts[i], max_new_tokens=TOKENS, **overrides, **own)
        except Exception as error:  # reported below, not swallowed
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    return results


def test_concurrent_requests_share_drafting_passes_and_get_their_sequential_outputs(trio, sequential):
    ensemble = SpecFuse(trio)
    results = _concurrently(ensemble, PROMPTS)
    for alone, together in zip(sequential, results):
        assert together.text == alone.text
        assert together.finish_reason == alone.finish_reason
        assert [r.winner for r in together.trace.rounds] == [r.winner for r in alone.trace.rounds]
        assert together.usage.completion_tokens == alone.usage.completion_tokens
        for name, used in together.usage.members.items():
            # the same work as alone, some of it in passes shared with other requests
            assert used.drafted_tokens == alone.usage.members[name].drafted_tokens
            assert used.forward_calls == alone.usage.members[name].forward_calls
    assert sum(u.shared_forward_calls for r in results for u in r.usage.members.values()) > 0
    assert ensemble._rounds.batched_rounds > 0
    assert all(u.shared_forward_calls == 0 for r in sequential for u in r.usage.members.values())
    timing = ensemble.batching  # benchmarks split a run's time with these
    assert timing["prepare_seconds"] > 0 and timing["step_seconds"] > 0


def test_a_batch_cap_of_one_runs_rounds_one_at_a_time(trio, sequential):
    ensemble = SpecFuse(trio, EnsembleConfig(max_batch_requests=1))
    results = _concurrently(ensemble, PROMPTS[:3])
    assert [r.text for r in results] == [r.text for r in sequential[:3]]
    assert ensemble._rounds.batched_rounds == 0
    assert all(u.shared_forward_calls == 0 for r in results for u in r.usage.members.values())
    assert ensemble.batching["step_seconds"] > 0  # no shared drafting: the time is all in rounds


def test_batches_are_cut_at_the_cap(trio, sequential):
    ensemble = SpecFuse(trio, EnsembleConfig(max_batch_requests=2))
    sizes = []
    original = ensemble._rounds.prepare
    ensemble._rounds.prepare = lambda requests: (sizes.append(len(requests)), original(requests))
    results = _concurrently(ensemble, PROMPTS)
    assert [r.text for r in results] == [r.text for r in sequential]
    assert sizes and max(sizes) == 2


@pytest.mark.parametrize("value", [0, -1])
def test_max_batch_requests_is_validated(value):
    with pytest.raises(ValidationError):
        EnsembleConfig(max_batch_requests=value)


def test_a_fault_in_one_requests_row_stays_in_that_request(trio, sequential):
    """A member whose token choice fails for one request (e.g. a broken per-request rule) is taken out
    of that request only; its neighbours in the same shared passes keep their sequential outputs."""
    ensemble = SpecFuse(trio)
    requests = [ensemble.start(p, max_new_tokens=TOKENS) for p in PROMPTS[:3]]
    session = requests[1].sessions["qwen2"]

    def broken(logits):
        raise RuntimeError("rule failed")

    session.next_token = broken
    results = [None] * 3

    def run(i):
        stream = type(ensemble.stream(PROMPTS[i]))(ensemble, requests[i])
        for _ in stream:
            pass
        results[i] = stream.result()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [f.member for f in results[1].trace.faults] == ["qwen2"]
    for i in (0, 2):
        assert results[i].trace.faults == []
        assert results[i].text == sequential[i].text


def test_closing_a_request_mid_batch_leaves_the_others_alone(trio, sequential):
    ensemble = SpecFuse(trio)
    stopped = ensemble.stream(PROMPTS[3], max_new_tokens=TOKENS)
    results = [None] * 2

    def run(i):
        results[i] = ensemble.generate(PROMPTS[i], max_new_tokens=TOKENS)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    next(stopped)
    stopped.close()
    for t in threads:
        t.join()
    assert [r.text for r in results] == [r.text for r in sequential[:2]]
    assert all(s.cache.get_seq_length() == 0 for s in stopped.request.sessions.values())


def test_constrained_requests_in_one_batch_each_keep_their_own_grammar(trio):
    """Each request's grammar masks only its own rows of a shared decode pass: batched constrained
    requests (two different formats) get what they get alone."""
    pytest.importorskip("llguidance")
    formats = [
        {"type": "object", "properties": {"colour": {"enum": ["red", "green", "blue"]}}, "required": ["colour"], "additionalProperties": False},
        {"type": "object", "properties": {"word": {"enum": ["yes", "no"]}}, "required": ["word"], "additionalProperties": False},
    ]
    prompts = PROMPTS[:2] + PROMPTS[2:4]
    schemas = formats + formats
    alone_ensemble = SpecFuse(trio)
    alone = [alone_ensemble.generate(p, response_format=s, max_new_tokens=TOKENS) for p, s in zip(prompts, schemas)]
    ensemble = SpecFuse(trio)
    results = _concurrently(ensemble, prompts, per_request=[{"response_format": s} for s in schemas])
    assert [r.text for r in results] == [r.text for r in alone]
    assert ensemble._rounds.batched_rounds > 0
    # the grammar held for each request's own format, whatever random weights prefer
    assert [json.loads(r.text) in ({"colour": c} for c in ("red", "green", "blue")) for r in results[::2]] == [True, True]
    assert [json.loads(r.text) in ({"word": "yes"}, {"word": "no"}) for r in results[1::2]] == [True, True]


def test_default_rows_as_needed_shares_passes_without_padding_a_lone_request(random_members):
    """Default mode: a lone request's decode step is the plain one-row forward (no padding cost),
    concurrent requests share passes of as many rows as drafts, and every request still finishes
    with its own usage; outputs may differ from the lone run only where logits nearly tie."""
    from specfuse_core import Member

    members = [random_members["llama"], random_members["qwen2"], random_members["gemma3"]]
    default = [Member(m.model, m.tokenizer, name=m.name, plain_prompt=m.plain_prompt) for m in members]
    assert all(m.decode_block is None for m in default)
    ensemble = SpecFuse(default)
    alone = ensemble.generate(PROMPTS[0], max_new_tokens=TOKENS)
    assert all(u.shared_forward_calls == 0 for u in alone.usage.members.values())
    results = _concurrently(ensemble, PROMPTS)
    assert all(r.finish_reason in ("stop", "length") and r.usage.completion_tokens > 0 for r in results)
    assert sum(u.shared_forward_calls for r in results for u in r.usage.members.values()) > 0
    assert ensemble._rounds.batched_rounds > 0


def test_rows_as_needed_match_the_lone_step_up_to_last_bits(random_members):
    """The default pass of n unpadded rows: each row's logits are the lone step's to float rounding."""
    import torch

    from specfuse_core.kv_cache import new_cache
    from specfuse_core.local.rows import decode_rows

    member = random_members["qwen2"]
    model = member.model
    prompts = [[5 + i, 7, 9 + i] * (2 + i) for i in range(4)]

    def prefilled(ids):
        cache = new_cache()
        with torch.inference_mode():
            model(input_ids=torch.tensor([ids]), use_cache=True, **{member._cache_kwarg: cache})
        return cache

    lone = []
    for ids in prompts:
        with torch.inference_mode():
            out = model(input_ids=torch.tensor([[11]]), use_cache=True, logits_to_keep=1, **{member._cache_kwarg: prefilled(ids)})
        lone.append(out.logits[0, -1].float())
    together = decode_rows(model, member._cache_kwarg, [prefilled(ids) for ids in prompts], [11] * 4, [len(p) for p in prompts], None)
    assert together.shape[0] == 4
    for row, alone in zip(together, lone):
        torch.testing.assert_close(row.float(), alone, atol=1e-3, rtol=1e-3)


def test_drafts_after_an_unsure_lead_meet_in_shared_passes_and_change_nothing(trio):
    """At the strictest gate every lead is unsure, so every round's other drafters draft inside the
    round: those drafts park in the batch's pool and run in shared passes, and each request still gets,
    byte for byte and call for call, what it gets alone."""
    config = EnsembleConfig(gate_threshold=0.0, lead_member="qwen2")
    alone = SpecFuse(trio, config)
    sequential = [alone.generate(p, max_new_tokens=TOKENS) for p in PROMPTS]
    ensemble = SpecFuse(trio, config)
    results = _concurrently(ensemble, PROMPTS)
    assert ensemble.batching["shared_round_drafts"] > 0 and ensemble.batching["pooled_drafting_seconds"] > 0
    for lone, together in zip(sequential, results):
        assert together.text == lone.text and together.finish_reason == lone.finish_reason
        for name, used in together.usage.members.items():
            assert used.drafted_tokens == lone.usage.members[name].drafted_tokens
            assert used.forward_calls == lone.usage.members[name].forward_calls
    off = SpecFuse(trio, config.with_overrides(pooled_drafting=False))
    assert [r.text for r in _concurrently(off, PROMPTS[:3])] == [r.text for r in sequential[:3]]
    assert off.batching["shared_round_drafts"] == 0 and off.batching["batched_rounds"] > 0
