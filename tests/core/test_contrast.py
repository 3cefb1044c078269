"""The context-free contrast (``contrast_weight``): the rule on score tables, the conversation it scores
in, and the engine keeping a second session per verifier in step with the response (random-weight
members with real tokenizers)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from specfuse_core import EnsembleConfig, SpecFuse
from specfuse_core.backend import Draft, Sampling
from specfuse_core.judge import Judge
from specfuse_core.member import Candidate
from specfuse_core.messages import normalize_conversation, with_tools, without_question
from specfuse_core.scoring import HedgeWeights, contrast_scores

QUESTION = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name three colours."}]


# ---------------------------------------------------------------- the rule, on tables
def test_contrast_subtracts_the_weighted_context_free_score():
    out = contrast_scores({"a": [-1.0, -2.0], "b": [-0.5, -0.5]}, {"a": [-0.2, -3.0], "b": [-1.0, -4.0]}, 0.5)
    assert out == {"a": pytest.approx([-0.9, -0.5]), "b": pytest.approx([0.0, 1.5])}


def test_contrast_at_weight_zero_or_without_free_scores_keeps_the_conditional_ones():
    conditional = {"a": [-1.0, -2.0], "b": [-0.5, -0.7]}
    assert contrast_scores(conditional, {"a": [-9.0, -9.0]}, 0.0) == conditional
    assert contrast_scores(conditional, {"a": [0.0, -1.0]}, 1.0)["b"] == [-0.5, -0.7]


def test_contrast_refuses_score_lists_of_different_lengths():
    with pytest.raises(ValueError, match="2 conditional scores but 1"):
        contrast_scores({"a": [-1.0, -2.0]}, {"a": [-1.0]}, 0.5)


def test_a_generic_candidate_loses_its_edge_under_contrast():
    """Both verifiers find the generic opening more likely after the question, but almost as likely
    without it; the question-specific plan owes its likelihood to the question."""
    candidates = [Candidate("To solve this problem, we need to", False), Candidate("To find how many eggs Janet sells,", False)]
    proposers = [["smol"], ["qwen"]]
    scored = {"smol": [-0.4, -1.6], "qwen": [-0.3, -0.5]}
    free = {"smol": [-0.6, -3.5], "qwen": [-0.5, -2.6]}

    def winner(weight: float) -> int:
        config = EnsembleConfig(contrast_weight=weight)
        judge = Judge(config, HedgeWeights(["smol", "qwen"], 1.0), ["smol", "qwen"], "")
        verdict = judge.decide(candidates, proposers, {}, scored, ["smol", "qwen"], "", free if weight else None)
        return verdict.winner

    assert winner(0.0) == 0
    assert winner(0.5) == 1


def test_the_trace_keeps_both_scores():
    config = EnsembleConfig(contrast_weight=0.5)
    judge = Judge(config, HedgeWeights(["a", "b"], 1.0), ["a", "b"], "")
    candidates = [Candidate("x", False), Candidate("y", False)]
    verdict = judge.decide(candidates, [["a"], ["b"]], {}, {"a": [-1.0, -2.0]}, ["a"], "", {"a": [-0.5, -4.0]})
    drafts = {"a": Draft("x", False, 1, -0.1), "b": Draft("y", False, 1, -0.2)}
    trace = verdict.trace(1, drafts, [], False)
    assert trace.candidates[0].mean_logprobs == {"a": -1.0} and trace.candidates[0].context_free_logprobs == {"a": -0.5}
    contrasted = np.array([-1.0 + 0.25, -2.0 + 2.0])
    assert [c.normalized["a"] for c in trace.candidates] == pytest.approx(np.exp(contrasted) / np.exp(contrasted).sum())


@pytest.mark.parametrize("value", [-0.1, 1.5, math.nan, math.inf])
def test_contrast_weight_is_validated(value):
    with pytest.raises(ValidationError, match="contrast_weight"):
        EnsembleConfig(contrast_weight=value)
    with pytest.raises(ValidationError, match="contrast_rounds"):
        EnsembleConfig(contrast_rounds=0)


# ---------------------------------------------------------------- the conversation it scores in
def test_without_question_empties_only_the_last_user_message():
    conversation = normalize_conversation(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "Name three colours."},
        ]
    )
    free = without_question(conversation)
    assert [m["content"] for m in free] == ["Be brief.", "Hi", "Hello!", ""]
    assert conversation[-1]["content"] == "Name three colours."  # the caller's conversation is untouched


def test_without_question_keeps_the_offered_tools():
    tools = ("a tool",)
    free = without_question(with_tools(normalize_conversation("What is the weather?"), tools))
    assert free.tools == tools and free[0]["content"] == ""


# ---------------------------------------------------------------- the engine
@pytest.fixture(scope="module")
def trio(random_members):
    return [random_members["llama"], random_members["qwen2"], random_members["gemma3"]]


def test_votes_carry_the_scores_a_fresh_session_without_the_question_gives(trio):
    """The context-free session follows the accepted response round after round: every vote's
    context-free scores equal those of a session started now on the response so far."""
    result = SpecFuse(trio, EnsembleConfig(max_new_tokens=30, contrast_weight=0.5)).generate(QUESTION)
    voted = [r for r in result.trace.rounds if r.verifiers]
    assert len(voted) >= 2
    free_conversation = without_question(normalize_conversation(QUESTION))
    response = ""
    for round_trace in result.trace.rounds:
        if round_trace.verifiers:
            candidates = [Candidate(c.text, c.finished) for c in round_trace.candidates]
            for member in trio:
                expected = member.start(free_conversation, Sampling()).score(response, candidates)
                got = [c.context_free_logprobs[member.name] for c in round_trace.candidates]
                assert got == pytest.approx(expected, abs=2e-3)
        response += round_trace.candidates[round_trace.winner].text
    assert result.text.startswith(response[: len(result.text)])


def test_votes_normalise_the_contrasted_scores_and_earlier_rounds_are_unchanged(trio):
    plain = SpecFuse(trio, EnsembleConfig(max_new_tokens=30)).generate(QUESTION)
    contrasted = SpecFuse(trio, EnsembleConfig(max_new_tokens=30, contrast_weight=1.0)).generate(QUESTION)
    assert all(not c.context_free_logprobs for r in plain.trace.rounds for c in r.candidates)
    voted = [r for r in contrasted.trace.rounds if r.verifiers]
    assert voted
    for round_trace in voted:
        for verifier in round_trace.verifiers:
            values = np.array([c.mean_logprobs[verifier] - c.context_free_logprobs[verifier] for c in round_trace.candidates])
            expected = np.exp(values - values.max()) / np.exp(values - values.max()).sum()
            assert [c.normalized[verifier] for c in round_trace.candidates] == pytest.approx(expected)
    first_vote = next(i for i, r in enumerate(plain.trace.rounds) if r.verifiers)
    # the contrast only enters votes: up to the first one both requests ran the same rounds
    assert [r.candidates[r.winner].text for r in plain.trace.rounds[:first_vote]] == [
        r.candidates[r.winner].text for r in contrasted.trace.rounds[:first_vote]
    ]


def test_usage_counts_the_context_free_passes(trio):
    ensemble = SpecFuse(trio, EnsembleConfig(max_new_tokens=30, contrast_weight=0.5))
    with ensemble.stream(QUESTION) as stream:
        request = stream.request
        list(stream)
    usage = stream.result().usage
    votes = sum(1 for r in stream.result().trace.rounds if r.verifiers)
    assert votes >= 1
    for name, contrast in request.contrast.items():
        own = request.sessions[name].counters
        assert contrast.counters.forward_calls >= votes  # one context-free pass per vote at least
        assert usage.members[name].forward_calls == own.forward_calls + contrast.counters.forward_calls
        assert usage.members[name].drafted_tokens == own.drafted_tokens


def test_draft_only_members_get_no_context_free_session(trio):
    ensemble = SpecFuse(trio, EnsembleConfig(max_new_tokens=8, contrast_weight=0.5, roles={"llama": "draft"}))
    with ensemble.stream(QUESTION) as stream:
        assert set(stream.request.contrast) == {"qwen2", "gemma3"}
    with SpecFuse(trio, EnsembleConfig(max_new_tokens=8)).stream(QUESTION) as stream:
        assert stream.request.contrast == {}


def test_a_failing_context_free_session_faults_its_member_only(trio, monkeypatch):
    ensemble = SpecFuse(trio, EnsembleConfig(max_new_tokens=40, contrast_weight=0.5))
    with ensemble.stream(QUESTION) as stream:
        request = stream.request
        broken = request.contrast["gemma3"]
        original, calls = broken.score, []

        def fail(*args, **kwargs):  # the first context-free pass works, the second fails
            calls.append(1)
            if len(calls) > 1:
                raise RuntimeError("context-free pass failed")
            return original(*args, **kwargs)

        monkeypatch.setattr(broken, "score", fail)
        events = list(stream)
    result = stream.result()
    assert events and result.text
    faults = [f for f in result.trace.faults if f.member == "gemma3"]
    assert len(faults) == 1 and faults[0].phase == "score"
    assert all("gemma3" not in r.verifiers for r in result.trace.rounds[faults[0].round :])
    assert result.usage.members["gemma3"].forward_calls >= request.contrast["gemma3"].counters.forward_calls > 0


def test_concurrent_requests_pool_their_context_free_passes_too(random_members):
    """Under batched rounds each request's context-free session scores in the pooled passes as well,
    and the request still gets what it gets alone (near-ties of random weights may move one vote)."""
    from specfuse_core import Member

    from .test_batched_rounds import PROMPTS, TOKENS, _concurrently

    members = [Member(m.model, m.tokenizer, name=m.name, plain_prompt=m.plain_prompt) for m in random_members.values()]
    ensemble = SpecFuse(members, EnsembleConfig(contrast_weight=0.5))
    alone = [ensemble.generate(p, max_new_tokens=TOKENS) for p in PROMPTS]
    results = _concurrently(ensemble, PROMPTS)
    assert ensemble.batching["shared_scoring_passes"] > 0
    assert all(r.trace.faults == [] for r in results)
    voted = [r for result in results for r in result.trace.rounds if r.verifiers]
    assert voted and all(set(r.verifiers) <= set(r.candidates[0].context_free_logprobs) for r in voted)
    assert sum(t.text == a.text for t, a in zip(results, alone)) >= len(PROMPTS) - 1


def test_a_contrast_window_scores_without_the_question_only_in_the_first_rounds(trio):
    window = 1
    ensemble = SpecFuse(trio, EnsembleConfig(max_new_tokens=60, contrast_weight=0.5, contrast_rounds=window))
    with ensemble.stream(QUESTION) as stream:
        request = stream.request
        list(stream)
    rounds = stream.result().trace.rounds
    voted = [r for r in rounds if r.verifiers]
    assert any(r.round <= window for r in voted) and any(r.round > window for r in voted)
    for r in voted:
        has_free = all(c.context_free_logprobs for c in r.candidates)
        assert has_free == (r.round <= window)
    calls = {name: session.counters.forward_calls for name, session in request.contrast.items()}
    assert all(0 < n <= window for n in calls.values())  # no context-free pass after the window
    assert request.contrast["qwen2"].cached_ids == []  # its cache was freed when the window closed
