"""Rules that decide whom to trust, on plain score tables (no models): consensus credit, prior and
Hedge weights, calibration fitting and its file, and config validation of the new fields."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pydantic import ValidationError

from specfuse_core import EnsembleConfig
from specfuse_core.calibration import Calibration, CalibrationFileError, fit_calibration
from specfuse_core.scoring import HedgeWeights, combine, consensus_shares


def test_consensus_counts_other_drafters_that_start_the_same_way():
    texts = ["The capital is Paris", "Paris is the", "The capital of"]
    proposers = [["a"], ["b"], ["c"]]
    drafts = {"a": "The capital is Paris", "b": "Paris is the", "c": "The capital of"}
    shares = consensus_shares(texts, proposers, drafts, count=2)
    # "The capital" is shared by a and c: each gets the other's support out of two others
    assert shares.tolist() == pytest.approx([0.5, 0.0, 0.5])


def test_consensus_ignores_the_candidates_own_proposers():
    shares = consensus_shares(["yes"], [["a", "b"]], {"a": "yes", "b": "yes"})
    assert shares.tolist() == [0.0]  # identical drafts are already one candidate: no double credit


def test_prior_weights_decide_between_disagreeing_verifiers():
    normalized = {"strong": np.array([0.9, 0.1]), "weak": np.array([0.0, 1.0])}
    proposers = [["strong"], ["weak"]]
    uniform = combine(normalized, {"strong": 1.0, "weak": 1.0}, proposers)
    assert uniform[1] > uniform[0]  # the weak member's certainty wins under equal weights
    prior = combine(normalized, {"strong": 1.0, "weak": 0.2}, proposers)
    assert prior[0] > prior[1]


def test_hedge_starts_from_prior_weights():
    hedge = HedgeWeights(["a", "b", "c"], 1.0, {"a": 2.0, "b": 0.5})
    assert hedge.snapshot() == {"a": 2.0, "b": 0.5, "c": 1.0}
    hedge.update(np.array([1.0, 0.0]), {"a": 0, "b": 1})
    assert hedge.weights["a"] > hedge.weights["c"] > hedge.weights["b"]


def test_fit_calibration_weights_roles_and_lead():
    calibration = fit_calibration({"smol": 0.62, "gemma": 0.30, "qwen": 0.76}, items=160, dataset="dev")
    assert calibration.lead_member == "qwen"
    assert calibration.member_weights["qwen"] == 1.0
    assert calibration.member_weights["smol"] == pytest.approx(np.exp(5 * (0.62 - 0.76)), abs=1e-4)
    assert calibration.member_weights["gemma"] < calibration.member_weights["smol"] < 1.0
    assert calibration.roles == {"gemma": "verify"}  # 0.30 < 0.5 * 0.76; smol stays a drafter


def test_fit_calibration_rejects_empty_input():
    with pytest.raises(ValueError):
        fit_calibration({}, items=10)
    with pytest.raises(ValueError):
        fit_calibration({"a": 0.5}, items=0)


def test_calibration_round_trips_through_its_file_into_a_config(tmp_path):
    calibration = fit_calibration({"a": 0.8, "b": 0.2}, items=50, dataset="dev")
    path = calibration.save(tmp_path / "cal.json")
    loaded = Calibration.load(path)
    assert loaded == calibration
    config = loaded.apply(EnsembleConfig(max_new_tokens=32))
    assert config.member_weights == calibration.member_weights
    assert config.roles == {"b": "verify"} and config.lead_member == "a" and config.max_new_tokens == 32


@pytest.mark.parametrize("content", ["not json", json.dumps({"roles": {}}), json.dumps({"member_weights": {"a": -1}})])
def test_bad_calibration_files_fail_with_a_named_error(tmp_path, content):
    path = tmp_path / "cal.json"
    path.write_text(content)
    with pytest.raises(CalibrationFileError):
        Calibration.load(path).apply(EnsembleConfig())
    with pytest.raises(CalibrationFileError, match="does not exist"):
        Calibration.load(tmp_path / "missing.json")


@pytest.mark.parametrize(
    "fields",
    [{"member_weights": {"a": 0.0}}, {"member_weights": {"a": float("nan")}}, {"roles": {"a": "judge"}}, {"gate_threshold": 0.5}, {"consensus_weight": -1},
     {"gate_check_threshold": 0.1}, {"gate_check_threshold": float("-inf")}],
)
def test_config_rejects_bad_trust_settings(fields):
    with pytest.raises(ValidationError):
        EnsembleConfig(**fields)


def test_calibration_settings_apply_only_where_the_config_keeps_the_library_default():
    calibration = Calibration(member_weights={"a": 1.0}, settings={"end_of_turn_scoring": "text_only", "repetition_penalty": 0.5})
    config = calibration.apply(EnsembleConfig(repetition_penalty=0.2))
    assert config.end_of_turn_scoring == "text_only"  # left at the default: the calibration's value
    assert config.repetition_penalty == 0.2  # chosen by the caller: kept
    assert calibration.apply(EnsembleConfig(member_weights={"a": 3.0})).member_weights == {"a": 3.0}


def test_the_second_opinion_is_the_most_trusted_other_verifier():
    from specfuse_core.judge import Judge

    config = EnsembleConfig(gate_threshold=-1.0, gate_check_threshold=-2.0, member_weights={"a": 1.0, "b": 0.8, "c": 0.3})
    judge = Judge(config, HedgeWeights(["a", "b", "c"], 1.0, config.member_weights), ["a", "b", "c"], "")
    assert judge.second_opinion("a", ["a", "b", "c"], 1) == "b"
    assert judge.second_opinion("b", ["a", "b", "c"], 1) == "a"
    assert judge.second_opinion("a", ["a"], 1) is None  # nobody else to ask
    assert judge.second_opinion("a", ["a", "b", "c"], 500) == "b"  # no window: every round
    assert judge.seconded(-1.99) and judge.seconded(-2.0) and not judge.seconded(-2.01)
    assert judge.seconded(None)  # no check (failed checker): the lead's confidence stands
    off = Judge(EnsembleConfig(gate_threshold=-1.0), HedgeWeights(["a", "b"], 1.0, {}), ["a", "b"], "")
    assert off.second_opinion("a", ["a", "b"], 1) is None and off.seconded(-50.0)


def test_reserves_draft_only_behind_a_gating_lead_and_never_compete_to_stay():
    from specfuse_core.judge import Judge

    config = EnsembleConfig(gate_threshold=-1.0, lead_member="a", roles={"b": "reserve", "c": "verify"}, model_exit=True, exit_warmup_rounds=1, min_members=1)
    judge = Judge(config, HedgeWeights(["a", "b", "c"], 1.0, {}), ["a", "b", "c"], "")
    assert judge.drafters(["a", "b", "c"]) == ["a"]
    assert judge.reserves(["a", "b", "c"], ["a"]) == ["b"]
    assert judge.lead(["a"]) is None and judge.lead(["a"], ["b"]) == "a"  # alone, but with a reserve behind it
    assert judge.verifiers(["a", "b", "c"]) == ["a", "b", "c"]
    judge.quality.update({"a": 5.0, "b": -50.0, "c": -50.0})
    assert judge.exits(["a", "b", "c"], 3) == []  # b and c propose in few or no rounds: not judged on them
    ungated = Judge(EnsembleConfig(roles={"b": "reserve"}), HedgeWeights(["a", "b"], 1.0, {}), ["a", "b"], "")
    assert ungated.reserves(["a", "b"], ["a"]) == [] and ungated.lead(["a"], []) is None
    everyone = Judge(EnsembleConfig(gate_threshold=-1.0, roles={"a": "reserve", "b": "reserve"}), HedgeWeights(["a", "b"], 1.0, {}), ["a", "b"], "")
    assert everyone.drafters(["a", "b"]) == ["a", "b"] and everyone.reserves(["a", "b"], ["a", "b"]) == []  # nobody left to lead: all draft


def test_the_second_opinion_runs_only_in_its_window_of_first_rounds():
    from specfuse_core.judge import Judge

    config = EnsembleConfig(gate_threshold=-1.0, gate_check_threshold=-2.0, gate_check_rounds=4)
    judge = Judge(config, HedgeWeights(["a", "b"], 1.0, {}), ["a", "b"], "")
    assert [judge.second_opinion("a", ["a", "b"], n) for n in (1, 4, 5, 40)] == ["b", "b", None, None]
    with pytest.raises(ValidationError):
        EnsembleConfig(gate_check_rounds=0)


def test_the_second_opinion_stops_once_the_response_reaches_its_token_window():
    from specfuse_core.judge import Judge

    config = EnsembleConfig(gate_threshold=-1.0, gate_check_threshold=-2.0, gate_check_tokens=96)
    judge = Judge(config, HedgeWeights(["a", "b"], 1.0, {}), ["a", "b"], "")
    assert [judge.second_opinion("a", ["a", "b"], 30, tokens) for tokens in (0, 95, 96, 200)] == ["b", "b", None, None]
    both = Judge(config.with_overrides(gate_check_rounds=2), HedgeWeights(["a", "b"], 1.0, {}), ["a", "b"], "")
    assert [both.second_opinion("a", ["a", "b"], n, t) for n, t in ((1, 10), (3, 10), (1, 96))] == ["b", None, None]
    with pytest.raises(ValidationError):
        EnsembleConfig(gate_check_tokens=0)


def test_a_calibrations_token_window_comes_only_with_its_threshold():
    calibration = Calibration(member_weights={"a": 1.0}, settings={"gate_check_threshold": -4.0, "gate_check_tokens": 96})
    assert calibration.apply(EnsembleConfig()).gate_check_tokens == 96
    assert calibration.apply(EnsembleConfig(gate_check_threshold=-2.0)).gate_check_tokens is None


def test_a_calibrations_check_window_comes_only_with_its_threshold():
    calibration = Calibration(member_weights={"a": 1.0}, settings={"gate_check_threshold": -4.0, "gate_check_rounds": 4})
    assert calibration.apply(EnsembleConfig()).gate_check_rounds == 4
    own = calibration.apply(EnsembleConfig(gate_check_threshold=-2.0))
    assert (own.gate_check_threshold, own.gate_check_rounds) == (-2.0, None)
    assert calibration.apply(EnsembleConfig(gate_check_rounds=9)).gate_check_rounds == 9


def test_the_tiny_preset_asks_for_a_second_opinion_by_the_least_likely_token():
    """The shipped calibration turns the check on in every round until the response has 96 tokens
    (docs/evaluation.md, "Reserves at the 96-token cap", "A check window in tokens"); a request's own
    threshold wins and keeps its own statistic (a mean threshold is never compared with a minimum) and
    windows."""
    from specfuse_core.backend import token_statistic
    from specfuse_core.presets import preset_calibration

    calibration = preset_calibration("tiny")
    config = calibration.apply(EnsembleConfig())
    assert (config.gate_check_threshold, config.gate_check_statistic, config.gate_check_rounds, config.gate_check_tokens) == (-4.0, "min", None, 96)
    own = calibration.apply(EnsembleConfig(gate_check_threshold=-2.0))
    assert (own.gate_check_threshold, own.gate_check_statistic, own.gate_check_rounds, own.gate_check_tokens) == (-2.0, "mean", None, None)
    lowest = calibration.apply(EnsembleConfig(gate_check_threshold=-6.0, gate_check_statistic="min"))
    assert (lowest.gate_check_threshold, lowest.gate_check_statistic) == (-6.0, "min")
    assert token_statistic([-0.1, -5.0, -0.2], "min") == -5.0
    assert token_statistic([-0.1, -5.0, -0.2]) == pytest.approx(-5.3 / 3)


def test_the_tiny_preset_backs_a_weaker_lead_with_a_stronger_reserve_only():
    """The shipped router makes SmolLM2 the lead on a word problem, with Qwen (trusted more overall) as
    its reserve; on a one-word instruction Qwen leads and SmolLM2 only verifies. The base model never
    drafts."""
    from specfuse_core.presets import preset_calibration

    calibration = preset_calibration("tiny")
    assert calibration.router_demotes_to == "reserve_if_stronger"
    sums = calibration.for_prompt("Yuki shares 24 books equally among 4 friends. How many books does each friend get?")
    assert sums.lead_member == "smollm2-135m"
    assert sums.roles == {"qwen2.5-coder-0.5b": "reserve", "gemma3-270m": "verify"}
    word = calibration.for_prompt("Answer with exactly one word: what is the first day of the week after Sunday?")
    assert word.lead_member == "qwen2.5-coder-0.5b"
    assert word.roles == {"smollm2-135m": "verify", "gemma3-270m": "verify"}
