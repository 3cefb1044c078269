"""The packed, cached verification pass must give exactly what naive scoring gives, and the KV splice on
accept must leave a cache equal to a fresh prefill. Random weights, real tokenizers, three architectures
(Gemma3 with a 6-token sliding window, so the sliding-attention mask is exercised)."""

from __future__ import annotations

import pytest
import torch

from specfuse_core.member import Candidate
from specfuse_core import Sampling

CONVERSATION = [{"role": "user", "content": "Tell me about the sea, briefly, in two lines."}]
RESPONSE = "The sea is wide and deep,\nit"
CANDIDATES = [
    Candidate(" keeps its secrets", False),
    Candidate("\n\nWaves", False),
    Candidate("s", False),  # glues onto the previous word: tokenizer merge at the boundary
    Candidate(" 海は広い 🌊", False),
    Candidate(" sleeps.", True),
    Candidate("", True),  # only ends the turn
]


def naive_scores(member, prompt_ids, response, candidates):
    """Mean log-prob of each candidate's tokens, by a full uncached forward over prompt + text."""
    base = member.encode(response)
    out = []
    for cand in candidates:
        ending = (member.end_of_turn_text or "") if cand.finished else ""
        full = member.encode(response + cand.text + ending)
        shared = 0
        while shared < min(len(base), len(full)) and base[shared] == full[shared]:
            shared += 1
        scored = full[shared:]
        if cand.finished and member.end_of_turn_id is not None:
            scored = scored + [member.end_of_turn_id]
        sequence = prompt_ids + full[:shared] + scored
        with torch.inference_mode():
            logprobs = torch.log_softmax(member.model(torch.tensor([sequence])).logits[0].float(), -1)
        start = len(prompt_ids) + shared
        picked = [logprobs[start + j - 1, tok] for j, tok in enumerate(scored)]
        out.append(float(torch.stack(picked).mean()))
    return out


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gemma3"])
def test_packed_scores_equal_naive_scores(random_members, arch):
    member = random_members[arch]
    session = member.start(CONVERSATION, Sampling())
    session.draft(RESPONSE, 5)  # leaves draft tokens in the cache that scoring must roll back
    packed = session.score(RESPONSE, CANDIDATES)
    naive = naive_scores(member, session.prompt_ids, RESPONSE, CANDIDATES)
    assert packed == pytest.approx(naive, abs=2e-4)
    assert session.counters.forward_calls == 6  # 5 draft steps + exactly one scoring pass


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gemma3"])
@pytest.mark.parametrize("winner", [0, 1, 2, 3])
def test_accept_splice_equals_fresh_prefill(random_members, arch, winner):
    member = random_members[arch]
    session = member.start(CONVERSATION, Sampling())
    session.score(RESPONSE, CANDIDATES)
    calls = session.counters.forward_calls
    new_response = RESPONSE + CANDIDATES[winner].text
    session.accept(new_response, winner, own_draft=False)
    context = session._context(new_response)
    logits = session._sync(context)
    assert session.counters.forward_calls == calls + 1
    with torch.inference_mode():
        fresh = member.model(torch.tensor([context])).logits[0, -1]
    assert torch.allclose(logits, fresh, atol=1e-4)


def test_scores_reject_nothing_and_count_tokens(random_members):
    member = random_members["llama"]
    session = member.start(CONVERSATION, Sampling())
    scores = session.score("", [Candidate("Hello", False), Candidate("Hi", True)])
    assert len(scores) == 2 and all(s < 0 for s in scores)
    assert session.counters.verified_tokens >= 3


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gemma3"])
@pytest.mark.parametrize("winner", ["own", "other"])
def test_own_draft_is_scored_from_the_draft_and_others_in_one_pass(random_members, arch, winner):
    """The drafter's own candidate reuses its draft's log-probs and keys/values; scores still equal
    naive scoring, and accepting either candidate leaves a cache equal to a fresh prefill."""
    member = random_members[arch]
    session = member.start(CONVERSATION, Sampling())
    draft = session.draft(RESPONSE, 6)
    candidates = [CANDIDATES[0], draft, CANDIDATES[4]]
    calls = session.counters.forward_calls
    packed = session.score(RESPONSE, candidates)
    assert session.counters.forward_calls == calls + 1
    assert packed == pytest.approx(naive_scores(member, session.prompt_ids, RESPONSE, candidates), abs=2e-4)
    if arch == "gemma3":  # its draft re-tokenises to the same tokens, so the reuse path is the one taken
        assert session._verified.starts[1] == len(session._context(RESPONSE))
    chosen = 1 if winner == "own" else 0
    new_response = RESPONSE + candidates[chosen].text
    session.accept(new_response, chosen, own_draft=chosen == 1)
    context = session._context(new_response)
    logits = session._sync(context)
    with torch.inference_mode():
        fresh = member.model(torch.tensor([context])).logits[0, -1]
    assert torch.allclose(logits, fresh, atol=1e-4)
