"""Roles, prior weights, confidence gating and like-with-like end-of-turn scoring, on fast
random-weight members with real tokenizers."""

from __future__ import annotations

import pytest

from specfuse_core import EnsembleConfig, SpecFuse
from specfuse_core.errors import UnknownMemberNameError
from specfuse_core.backend import Sampling
from specfuse_core.member import Candidate
from specfuse_core.messages import normalize_conversation

QUESTION = [{"role": "user", "content": "Name three colours."}]


@pytest.fixture(scope="module")
def trio(random_members):
    return [random_members["llama"], random_members["qwen2"], random_members["gemma3"]]


def test_verify_only_member_never_drafts_but_scores(trio):
    result = SpecFuse(trio, EnsembleConfig(max_new_tokens=24, roles={"gemma3": "verify"})).generate(QUESTION)
    assert result.usage.members["gemma3"].drafted_tokens == 0
    assert all("gemma3" not in r.active_members for r in result.trace.rounds)
    scored = [r for r in result.trace.rounds if r.verifiers]
    assert scored and all("gemma3" in r.verifiers for r in scored)


def test_draft_only_member_proposes_but_does_not_vote(trio):
    result = SpecFuse(trio, EnsembleConfig(max_new_tokens=24, roles={"llama": "draft"})).generate(QUESTION)
    assert result.usage.members["llama"].drafted_tokens > 0
    assert all("llama" not in r.verifiers for r in result.trace.rounds)


def test_prior_weights_are_the_vote_weights(trio):
    weights = {"llama": 0.2, "qwen2": 1.0, "gemma3": 0.5}
    result = SpecFuse(trio, EnsembleConfig(max_new_tokens=16, member_weights=weights)).generate(QUESTION)
    scored = [r for r in result.trace.rounds if r.verifiers]
    assert scored and all(r.weights == {n: weights[n] for n in r.verifiers} for r in scored)


def test_gating_at_the_loosest_threshold_is_the_lead_alone(trio):
    """A threshold every draft passes: the lead decodes alone, exactly as it would as a single member."""
    lead_alone = SpecFuse([trio[1]], EnsembleConfig(max_new_tokens=24, segment_tokens=6)).generate(QUESTION)
    config = EnsembleConfig(max_new_tokens=24, segment_tokens=6, gate_threshold=-1e9, lead_member="qwen2")
    gated = SpecFuse(trio, config).generate(QUESTION)
    assert gated.trace.rounds and all(r.gated and r.active_members == ["qwen2"] for r in gated.trace.rounds)
    assert gated.usage.members["llama"].forward_calls == 0 and gated.usage.members["gemma3"].forward_calls == 0
    assert gated.text.startswith(lead_alone.text[: len(gated.text) - 8])  # word-aligned cuts may shift a word between rounds


def test_gating_at_the_strictest_threshold_is_the_full_ensemble(trio):
    plain = SpecFuse(trio, EnsembleConfig(max_new_tokens=20)).generate(QUESTION)
    strict = SpecFuse(trio, EnsembleConfig(max_new_tokens=20, gate_threshold=0.0, lead_member="qwen2")).generate(QUESTION)
    assert not any(r.gated for r in strict.trace.rounds)
    assert strict.text == plain.text  # the lead's draft is reused, not redrafted: same candidates, same votes


def test_a_second_opinion_that_always_agrees_changes_nothing_but_costs_one_pass(trio):
    """At the loosest check the lead still decodes alone; the checker scores each confident segment once."""
    config = EnsembleConfig(max_new_tokens=24, segment_tokens=6, gate_threshold=-1e9, lead_member="qwen2", member_weights={"llama": 0.9, "gemma3": 0.2})
    plain = SpecFuse(trio, config).generate(QUESTION)
    checked = SpecFuse(trio, config.with_overrides(gate_check_threshold=-1e9)).generate(QUESTION)
    assert checked.text == plain.text and all(r.gated for r in checked.trace.rounds)
    assert all(list(r.gate_check) == ["llama"] and r.gate_check["llama"] < 0 for r in checked.trace.rounds)
    assert checked.usage.members["llama"].forward_calls == len(checked.trace.rounds) and checked.usage.members["llama"].drafted_tokens == 0
    assert checked.usage.members["gemma3"].forward_calls == 0


def test_a_second_opinion_that_never_agrees_is_the_full_ensemble(trio):
    """The strictest check sends every round to the vote: the same answer as no gating at all."""
    config = EnsembleConfig(max_new_tokens=20, gate_threshold=-1e9, gate_check_threshold=0.0, lead_member="qwen2")
    checked = SpecFuse(trio, config).generate(QUESTION)
    plain = SpecFuse(trio, EnsembleConfig(max_new_tokens=20)).generate(QUESTION)
    assert not any(r.gated for r in checked.trace.rounds) and all(r.gate_check for r in checked.trace.rounds)
    assert checked.text == plain.text


def test_a_windowed_second_opinion_checks_only_the_first_rounds(trio):
    """``gate_check_rounds``: the never-agreeing check sends its window's rounds to the vote; after
    it the lead's confident segments go through unchecked (no check recorded, the lead alone)."""
    config = EnsembleConfig(
        max_new_tokens=48, segment_tokens=6, gate_threshold=-1e9, gate_check_threshold=0.0, gate_check_rounds=2, lead_member="qwen2"
    )
    result = SpecFuse(trio, config).generate(QUESTION)
    rounds = result.trace.rounds
    assert len(rounds) >= 4
    assert all(r.gate_check and not r.gated for r in rounds[:2])
    assert all(not r.gate_check and r.gated and r.active_members == ["qwen2"] for r in rounds[2:])


def test_a_token_window_checks_until_the_response_reaches_it(trio):
    """``gate_check_tokens``: the never-agreeing check sends every round that starts below the window's
    length (counting member's tokens) to the vote; from there the lead's confident segments go through
    unchecked."""
    config = EnsembleConfig(
        max_new_tokens=48, segment_tokens=6, gate_threshold=-1e9, gate_check_threshold=0.0, gate_check_tokens=14, lead_member="qwen2"
    )
    ensemble = SpecFuse(trio, config)
    rounds = ensemble.generate(QUESTION).trace.rounds
    response, starts = "", []
    for r in rounds:
        starts.append(ensemble.count_tokens(response))
        response += r.candidates[r.winner].text
    checked = [r.gate_check != {} for r in rounds]
    assert any(checked) and not all(checked)
    assert checked == [start < 14 for start in starts]
    assert all(r.gated and r.active_members == ["qwen2"] for r, c in zip(rounds, checked) if not c)


def test_a_token_window_as_long_as_the_cap_changes_nothing(trio):
    """A window of max_new_tokens tokens covers every round: the same text and trace as no window."""
    config = EnsembleConfig(max_new_tokens=36, segment_tokens=6, gate_threshold=-1e9, gate_check_threshold=0.0, lead_member="qwen2")
    everywhere = SpecFuse(trio, config).generate(QUESTION)
    windowed = SpecFuse(trio, config.with_overrides(gate_check_tokens=36)).generate(QUESTION)
    assert len(windowed.trace.rounds) >= 2 and all(r.gate_check for r in windowed.trace.rounds)
    assert windowed.text == everywhere.text
    assert [(r.gated, r.gate_check.keys()) for r in windowed.trace.rounds] == [(r.gated, r.gate_check.keys()) for r in everywhere.trace.rounds]


def test_the_min_statistic_checks_the_least_likely_token(trio):
    """With ``gate_check_statistic="min"`` the check records the checker's lowest token log-prob of the
    same segments: at or below their mean, strictly below where the segment's tokens differ."""
    config = EnsembleConfig(max_new_tokens=24, segment_tokens=6, gate_threshold=-1e9, gate_check_threshold=-1e9, lead_member="qwen2")
    mean = SpecFuse(trio, config).generate(QUESTION)
    low = SpecFuse(trio, config.with_overrides(gate_check_statistic="min")).generate(QUESTION)
    assert low.text == mean.text and len(low.trace.rounds) == len(mean.trace.rounds)
    pairs = [(a.gate_check["llama"], b.gate_check["llama"]) for a, b in zip(low.trace.rounds, mean.trace.rounds)]
    assert all(lowest <= average + 1e-6 for lowest, average in pairs)
    assert any(lowest < average - 1e-3 for lowest, average in pairs)


def test_votes_use_the_mean_whatever_the_checks_statistic(trio):
    """The statistic is the second opinion's alone: without gating every vote is unchanged."""
    plain = SpecFuse(trio, EnsembleConfig(max_new_tokens=16)).generate(QUESTION)
    low = SpecFuse(trio, EnsembleConfig(max_new_tokens=16, gate_check_statistic="min")).generate(QUESTION)
    assert low.text == plain.text
    assert [c.mean_logprobs for r in low.trace.rounds for c in r.candidates] == [c.mean_logprobs for r in plain.trace.rounds for c in r.candidates]


def test_votes_report_the_least_likely_token_with_vote_statistic_min(trio):
    """``vote_statistic="min"``: the first vote scores the same candidates by each verifier's lowest token
    log-prob, at or below their mean and strictly below for some."""
    config = EnsembleConfig(max_new_tokens=8, segment_tokens=6)
    mean = SpecFuse(trio, config).generate(QUESTION).trace.rounds[0]
    low = SpecFuse(trio, config.with_overrides(vote_statistic="min")).generate(QUESTION).trace.rounds[0]
    assert [c.text for c in low.candidates] == [c.text for c in mean.candidates] and len(low.candidates) > 1
    pairs = [(a.mean_logprobs[v], b.mean_logprobs[v]) for a, b in zip(low.candidates, mean.candidates) for v in b.mean_logprobs]
    assert pairs and all(lowest <= average + 1e-6 for lowest, average in pairs)
    assert any(lowest < average - 1e-3 for lowest, average in pairs)


def test_session_scores_mean_or_min_of_the_same_token_logprobs(trio):
    session = trio[0].start(normalize_conversation(QUESTION), Sampling())
    candidates = [Candidate("Red, green and blue.", False), Candidate("Blue", True)]
    means = session.score("", candidates)
    mins = session.score("", candidates, "min")
    assert all(lo <= m + 1e-6 for lo, m in zip(mins, means)) and mins[0] < means[0] - 1e-3


def test_a_reserve_drafts_only_when_the_lone_leads_segment_is_doubted(trio):
    """A lone drafter with a reserve behind it: with a check that always agrees the lead decodes alone
    and the reserve only scores; with one that never agrees the reserve drafts and every round votes."""
    config = EnsembleConfig(
        max_new_tokens=20, segment_tokens=5, gate_threshold=-1e9, lead_member="qwen2",
        roles={"llama": "reserve", "gemma3": "verify"}, member_weights={"llama": 0.9, "gemma3": 0.2},
    )
    agreeing = SpecFuse(trio, config.with_overrides(gate_check_threshold=-1e9)).generate(QUESTION)
    assert all(r.gated and r.active_members == ["qwen2"] and list(r.gate_check) == ["llama"] for r in agreeing.trace.rounds)
    assert agreeing.usage.members["llama"].drafted_tokens == 0
    doubting = SpecFuse(trio, config.with_overrides(gate_check_threshold=0.0)).generate(QUESTION)
    assert doubting.trace.rounds and all(not r.gated and r.active_members == ["llama", "qwen2"] for r in doubting.trace.rounds)
    assert all(set(r.verifiers) == {"llama", "qwen2", "gemma3"} for r in doubting.trace.rounds if r.verifiers)
    assert doubting.usage.members["llama"].drafted_tokens > 0 and doubting.usage.members["gemma3"].drafted_tokens == 0


def test_a_reserve_joins_an_unsure_lead_and_without_gating_only_verifies(trio):
    roles = {"llama": "reserve", "gemma3": "verify"}
    unsure = SpecFuse(trio, EnsembleConfig(max_new_tokens=16, gate_threshold=0.0, lead_member="qwen2", roles=roles)).generate(QUESTION)
    assert unsure.trace.rounds and all(r.active_members == ["llama", "qwen2"] for r in unsure.trace.rounds)
    ungated = SpecFuse(trio, EnsembleConfig(max_new_tokens=16, roles=roles)).generate(QUESTION)
    assert ungated.usage.members["llama"].drafted_tokens == 0
    assert all(r.active_members == ["qwen2"] for r in ungated.trace.rounds)


def test_gating_lead_defaults_to_the_heaviest_member(trio):
    config = EnsembleConfig(max_new_tokens=12, gate_threshold=-1e9, member_weights={"gemma3": 3.0})
    result = SpecFuse(trio, config).generate(QUESTION)
    assert result.trace.rounds[0].active_members == ["gemma3"]


def test_text_only_scoring_scores_finished_candidates_without_the_end_token(trio):
    candidates = [Candidate("Yes.", True), Candidate("", True), Candidate("Yes, it", False)]
    ensemble = SpecFuse(trio)
    with ensemble.stream(QUESTION, end_of_turn_scoring="text_only") as stream:
        assert stream.request.judge.scoring_candidates(candidates) == [Candidate("Yes.", False), Candidate("", True), Candidate("Yes, it", False)]
    with ensemble.stream(QUESTION) as stream:
        assert stream.request.judge.scoring_candidates(candidates) == candidates
    result = ensemble.generate(QUESTION, max_new_tokens=30, end_of_turn_scoring="text_only")
    assert result.text and "\ufffd" not in result.text


def test_settings_naming_unknown_members_fail_up_front(trio):
    with pytest.raises(UnknownMemberNameError, match="typo"):
        SpecFuse(trio, EnsembleConfig(roles={"typo": "verify"}))
    ensemble = SpecFuse(trio)
    with pytest.raises(UnknownMemberNameError, match="lead_member"):
        ensemble.generate(QUESTION, lead_member="nobody")


def test_a_routing_calibration_picks_the_lead_per_prompt_and_explicit_settings_win(trio):
    from specfuse_core.calibration import Calibration
    from specfuse_core.routing import PromptRouter, RoutedItem

    sums = [f"Add {n} and {n + 3}, then answer with the number." for n in range(6)]
    lists = [f"Name {w} colours of the rainbow in a list." for w in ("two", "three", "four", "five", "six", "seven")]
    items = [RoutedItem(prompt=p, correct={"llama": True, "qwen2": False, "gemma3": False}) for p in sums]
    items += [RoutedItem(prompt=p, correct={"llama": False, "qwen2": True, "gemma3": False}) for p in lists]
    calibration = Calibration(
        member_weights={"llama": 1.0, "qwen2": 1.0, "gemma3": 1.0}, lead_member="gemma3", gate_threshold=-1e9,
        items=12, router=PromptRouter(items=items, neighbours=6, prior_strength=1.0),
    )
    ensemble = SpecFuse(trio, EnsembleConfig(max_new_tokens=8, segment_tokens=4), calibration=calibration)

    def leads(result):
        return {tuple(r.active_members) for r in result.trace.rounds}

    assert leads(ensemble.generate("Add 40 and 43, then answer with the number.")) == {("llama",)}
    assert leads(ensemble.generate("Name eight colours of the rainbow in a list.")) == {("qwen2",)}
    assert leads(ensemble.generate("Zxqv?")) == {("gemma3",)}  # unlike every labelled prompt: the global lead
    explicit = ensemble.generate("Add 40 and 43, then answer with the number.", lead_member="qwen2")
    assert leads(explicit) == {("qwen2",)}  # a caller's own setting is never re-fitted
    regated = ensemble.generate("Add 40 and 43, then answer with the number.", gate_threshold=-1e8)
    assert leads(regated) == {("llama",)}  # another setting of the request does not switch routing off


def _routing_calibration(**settings):
    """Word problems: llama is right; one-word questions: qwen2 is right (a router over 20 prompts)."""
    from specfuse_core.calibration import Calibration
    from specfuse_core.routing import PromptRouter, RoutedItem

    sums = [f"Tom has {n} apples and buys {n + 4} more. How many apples does Tom have now?" for n in range(3, 13)]
    words = [f"Answer with one word only: what colour is {t}?" for t in ("grass", "snow", "coal", "a lemon", "blood", "milk", "ink", "a plum", "the sky", "an orange")]
    items = [RoutedItem(prompt=p, correct={"llama": True, "qwen2": False, "gemma3": False}) for p in sums]
    items += [RoutedItem(prompt=p, correct={"llama": False, "qwen2": True, "gemma3": False}) for p in words]
    return Calibration(
        member_weights={"llama": 0.8, "qwen2": 1.0, "gemma3": 0.3}, roles={"gemma3": "verify"}, lead_member="qwen2",
        gate_threshold=-0.7, items=20, router=PromptRouter(items=items, neighbours=5), settings=settings,
    )


SUM_QUESTION = [{"role": "user", "content": "Ann has 30 pears and buys 9 more. How many pears does Ann have now?"}]


def test_adapter_request_configs_are_routed_like_the_engines_own(trio):
    """The adapters send a whole request config built on the library defaults: the router still
    picks the lead for the prompt, as for a plain ``start``; a request's own lead is kept."""
    from specfuse_core import integration

    ensemble = SpecFuse(trio, calibration=_routing_calibration())
    assert ensemble.config.lead_member == "qwen2"  # set-wide
    assert ensemble.start(SUM_QUESTION).config.lead_member == "llama"
    assert ensemble.start(SUM_QUESTION, integration.request_config({"max_new_tokens": 8})).config.lead_member == "llama"
    assert ensemble.start(SUM_QUESTION, ensemble.config).config.lead_member == "llama"  # the set-wide values count as unset
    assert ensemble.start(SUM_QUESTION, lead_member="gemma3").config.lead_member == "gemma3"


def test_a_requests_own_check_threshold_keeps_its_own_statistic_and_window(trio):
    """Per-request overrides are calibrated like a whole config: a calibration's check statistic and
    window come only with its own threshold."""
    ensemble = SpecFuse(trio, calibration=_routing_calibration(gate_check_threshold=-4.0, gate_check_statistic="min", gate_check_rounds=4))
    shipped = ensemble.start(QUESTION).config
    assert (shipped.gate_check_threshold, shipped.gate_check_statistic, shipped.gate_check_rounds) == (-4.0, "min", 4)
    own = ensemble.start(QUESTION, gate_check_threshold=-2.0).config
    assert (own.gate_check_threshold, own.gate_check_statistic, own.gate_check_rounds) == (-2.0, "mean", None)
