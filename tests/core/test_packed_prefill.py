"""Packed prefills: the drafts that concurrent requests start on one member feed their accepted text in
one forward pass (requests packed one after another in a row). Each request's first draft token,
context log-probs and cache must be what its own prefill gives (to float rounding), and a fault in
the shared pass must stay a fault of that member in each request in it."""

from __future__ import annotations

import pytest
import torch

from specfuse_core import Member, Sampling
from specfuse_core.local import batched_draft

CONVERSATIONS = [
    [{"role": "user", "content": "Tell me about the sea, briefly, in two lines."}],
    [{"role": "user", "content": "Name three rivers of Europe and say which is longest, with reasons."}],
    [{"role": "user", "content": "Hi"}],
]
RESPONSES = ["The sea is wide and deep,\nit", "The Danube", ""]


def _default(member: Member) -> Member:
    """The member in the default mode (rows as needed), where prefills are packed."""
    return Member(member.model, member.tokenizer, name=member.name, plain_prompt=member.plain_prompt)


def _sessions(member: Member) -> list:
    sessions = [member.start(c, Sampling()) for c in CONVERSATIONS]
    sessions[0].draft(RESPONSES[0][:8], 3)  # a cache that holds part of the context and a stale draft
    return sessions


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gemma3"])
def test_packed_prefills_start_each_draft_as_its_own_prefill_does(random_members, arch):
    member = _default(random_members[arch])
    lone = _sessions(member)
    for session, response in zip(lone, RESPONSES):
        session.begin_draft(response, 4)
    packed = _sessions(member)
    calls = [s.counters.forward_calls for s in packed]
    going = batched_draft._prefill(member, [(s, r, 4, True) for s, r in zip(packed, RESPONSES)])
    assert [s for s, _ in going] == packed
    for alone, together, before in zip(lone, packed, calls):
        assert together.counters.forward_calls == before + 1 and together.counters.shared_forward_calls >= 1
        assert together.cached_ids == alone.cached_ids
        torch.testing.assert_close(together._drafting.context_logprobs, alone._drafting.context_logprobs, atol=2e-4, rtol=0)
        assert together.pending_token == alone.pending_token
        # the cache holds exactly the context: one more token gives what a fresh forward gives
        context = together.cached_ids + [together.pending_token]
        logits = together._sync(context)
        with torch.inference_mode():
            fresh = member.model(torch.tensor([context])).logits[0, -1]
        torch.testing.assert_close(logits, fresh, atol=1e-4, rtol=0)


def test_drafts_after_packed_prefills_match_the_lone_drafts(random_members):
    member = _default(random_members["qwen2"])
    lone = [s.draft(r, 6) for s, r in zip(_sessions(member), RESPONSES)]
    sessions = _sessions(member)
    batched_draft.draft_together(member, [(s, r, 6, True) for s, r in zip(sessions, RESPONSES)])
    assert [s.draft(r, 6).text for s, r in zip(sessions, RESPONSES)] == [d.text for d in lone]


def test_a_failed_packed_prefill_is_a_fault_of_that_member_in_each_request(random_members, monkeypatch):
    member = _default(random_members["llama"])
    sessions = _sessions(member)

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory in the shared pass")

    monkeypatch.setattr(batched_draft, "packed_rows", broken)
    batched_draft.draft_together(member, [(s, r, 4, True) for s, r in zip(sessions, RESPONSES)])
    for session, response in zip(sessions, RESPONSES):
        with pytest.raises(RuntimeError, match="shared pass"):
            session.draft(response, 4)


def test_a_lone_prefill_and_a_batch_invariant_member_keep_their_own_pass(random_members, monkeypatch):
    """One draft, or a member with ``decode_block`` set (the bits of a lone pass), never packs."""
    def unexpected(*args, **kwargs):
        raise AssertionError("packed a prefill that should run alone")

    monkeypatch.setattr(batched_draft, "packed_rows", unexpected)
    member = _default(random_members["llama"])
    session = member.start(CONVERSATIONS[0], Sampling())
    assert len(batched_draft._prefill(member, [(session, RESPONSES[0], 4, True)])) == 1
    invariant = Member(member.model, member.tokenizer, name="llama", decode_block=8)
    sessions = [invariant.start(c, Sampling()) for c in CONVERSATIONS]
    assert len(batched_draft._prefill(invariant, [(s, r, 4, True) for s, r in zip(sessions, RESPONSES)])) == 3


def test_a_long_prefill_runs_alone_and_the_short_ones_pack(random_members, monkeypatch):
    member = _default(random_members["llama"])
    sessions = [member.start(c, Sampling()) for c in CONVERSATIONS]
    sessions[0].draft(RESPONSES[0], 2)  # this one's prefill is now short; the two fresh ones feed their prompts
    lengths = [len(s.plan_prefill(r, 4).plan.ids) for s, r in zip(sessions, RESPONSES)]
    sessions = [member.start(c, Sampling()) for c in CONVERSATIONS]
    sessions[0].draft(RESPONSES[0], 2)
    packed = []
    real = batched_draft.packed_rows
    monkeypatch.setattr(batched_draft, "packed_rows", lambda *a, **k: packed.append(len(a[3])) or real(*a, **k))
    cap = sorted(lengths)[1]  # the two shortest pack, the longest runs alone
    monkeypatch.setattr(batched_draft, "PACKED_PREFILL_MAX_TOKENS", cap)
    going = batched_draft._prefill(member, [(s, r, 4, True) for s, r in zip(sessions, RESPONSES)])
    assert packed == [2] and len(going) == 3
    assert [s.counters.shared_forward_calls > 0 for s in sessions] == [n <= cap for n in lengths]
