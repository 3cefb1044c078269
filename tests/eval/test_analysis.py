"""Finding the items the ensemble lost, the rounds where a member's candidate was overruled, and the
paired test of gains against losses."""

from __future__ import annotations

import pytest

from specfuse_core.evaluation.analysis import exact_mcnemar_p, lost_items, overruled_rounds, paired_outcomes

from .conftest import make_record


def _round(number, winner, candidates):
    return {"round": number, "winner": winner, "active": ["a", "b"], "candidates": candidates}


def _candidate(text, proposers, combined, logprobs):
    return {"text": text, "proposers": proposers, "combined": combined, "mean_logprobs": logprobs}


def test_lost_items_lists_members_that_were_right():
    records = [
        make_record("a", "q1", True), make_record("b", "q1", False), make_record("ensemble", "q1", False),
        make_record("a", "q2", False), make_record("ensemble", "q2", False),  # nobody right: not a loss
        make_record("a", "q3", True), make_record("ensemble", "q3", True),
        make_record("ensemble_exit", "q1", False),
    ]
    assert lost_items(records) == [("q1", ["a"])]


def test_overruled_rounds():
    trace = {"rounds_detail": [
        _round(1, "b", [_candidate("echo", ["b"], 0.6, {"a": -0.5, "b": -0.1}), _candidate("right", ["a"], 0.4, {"a": -0.2, "b": -1.0})]),
        _round(2, "a", [_candidate("right", ["a"], 0.7, {}), _candidate("x", ["b"], 0.3, {})]),
        _round(3, "b", [_candidate("same", ["a", "b"], 1.0, {})]),  # agreed: nothing overruled
    ]}
    record = make_record("ensemble", "q1", False, trace=trace)
    rows = overruled_rounds(record, "a")
    assert len(rows) == 1
    assert rows[0]["round"] == 1 and rows[0]["winner_text"] == "echo" and rows[0]["member_text"] == "right"
    assert rows[0]["winner_logprobs"]["b"] == -0.1 and rows[0]["member_combined"] == 0.4


def test_exact_mcnemar_p_values():
    """Against hand-computed binomial tails: 19 gained and 4 lost is 2 * P(X <= 4), X ~ Bin(23, 1/2)."""
    assert exact_mcnemar_p(19, 4) == pytest.approx(2 * (1 + 23 + 253 + 1771 + 8855) / 2**23)
    assert exact_mcnemar_p(4, 19) == exact_mcnemar_p(19, 4)  # two-sided: direction does not matter
    assert exact_mcnemar_p(13, 0) == pytest.approx(2 / 2**13)
    assert exact_mcnemar_p(0, 0) == 1.0 and exact_mcnemar_p(3, 3) == 1.0  # never above 1
    with pytest.raises(ValueError, match="counts"):
        exact_mcnemar_p(-1, 2)


def test_paired_outcomes_only_on_shared_items():
    mine = {"q1": True, "q2": False, "q3": True, "q4": True}
    theirs = {"q1": False, "q2": True, "q3": True}  # q4 not answered by the other side
    assert paired_outcomes(mine, theirs) == {"items": 3, "gained": 1, "lost": 1, "p_value": 1.0}
