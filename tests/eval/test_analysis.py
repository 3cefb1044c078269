"""Finding the items the ensemble lost and the rounds where a member's candidate was overruled."""

from __future__ import annotations

from specfuse_core.evaluation.analysis import lost_items, overruled_rounds

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
