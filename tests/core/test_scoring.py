from __future__ import annotations

import numpy as np
import pytest

from specfuse_core.scoring import HedgeWeights, combine, exit_shares, members_to_exit, normalize_scores, pick_winner


def test_softmax_normalisation_is_a_distribution_and_order_preserving():
    probs = normalize_scores([-1.0, -2.0, -0.5], "softmax", 1.0)
    assert probs.sum() == pytest.approx(1.0)
    assert list(np.argsort(probs)) == [1, 0, 2]


def test_softmax_temperature_sharpens():
    flat = normalize_scores([-1.0, -2.0], "softmax", 10.0)
    sharp = normalize_scores([-1.0, -2.0], "softmax", 0.1)
    assert sharp[0] > flat[0]


def test_softmax_is_sign_safe_for_very_negative_scores():
    probs = normalize_scores([-900.0, -901.0], "softmax", 1.0)
    assert np.isfinite(probs).all() and probs[0] > probs[1]


def test_rank_normalisation_uses_order_only_and_splits_ties():
    assert normalize_scores([-1.0, -50.0, -2.0], "rank").tolist() == pytest.approx([2 / 3, 0.0, 1 / 3])
    assert normalize_scores([-1.0, -1.0], "rank").tolist() == pytest.approx([0.5, 0.5])


def test_combine_weights_verifiers():
    normalized = {"a": np.array([0.9, 0.1]), "b": np.array([0.2, 0.8])}
    assert pick_winner(combine(normalized, {"a": 1.0, "b": 1.0}, [["a"], ["b"]])) == 0
    assert pick_winner(combine(normalized, {"a": 1.0, "b": 3.0}, [["a"], ["b"]])) == 1


def test_exclude_self_vote():
    normalized = {"a": np.array([0.9, 0.1]), "b": np.array([0.6, 0.4]), "c": np.array([0.3, 0.7])}
    weights = {"a": 1.0, "b": 1.0, "c": 1.0}
    with_self = combine(normalized, weights, [["a"], ["c"]])
    without = combine(normalized, weights, [["a"], ["c"]], exclude_self_vote=True)
    assert pick_winner(with_self) == 0
    assert without[0] == pytest.approx((0.6 + 0.3) / 2) and without[1] == pytest.approx((0.1 + 0.4) / 2)


def test_raw_normalisation_keeps_the_log_probs():
    assert normalize_scores([-1.5, -7.0], "raw").tolist() == [-1.5, -7.0]


def test_raw_scores_without_self_votes_compare_each_candidates_doubt_by_its_peers():
    """Peer doubt: each candidate is judged by the members that did not propose it, on their own
    scale, so the answer its peer doubts less wins whatever each member thinks of its own."""
    scores = {"q": np.array([-0.2, -6.0]), "s": np.array([-7.0, -0.4])}  # q doubts s's answer less than s doubts q's
    weights = {"q": 1.0, "s": 0.5}
    assert pick_winner(combine({v: normalize_scores(x, "raw") for v, x in scores.items()}, weights, [["q"], ["s"]], exclude_self_vote=True)) == 1
    scores["q"][1] = -8.0
    assert pick_winner(combine({v: normalize_scores(x, "raw") for v, x in scores.items()}, weights, [["q"], ["s"]], exclude_self_vote=True)) == 0


def test_ties_break_to_the_earliest_candidate():
    assert pick_winner(np.array([0.5, 0.5])) == 0
    assert pick_winner(np.array([0.2, 0.4, 0.4])) == 1


def test_hedge_moves_weight_toward_the_member_peers_prefer():
    hedge = HedgeWeights(["a", "b", "c"], learning_rate=1.0)
    for _ in range(5):  # peers always rate a's candidate (0) best, c's worst
        hedge.update(np.array([0.7, 0.2, 0.1]), {"a": 0, "b": 1, "c": 2})
    w = hedge.snapshot()
    assert w["a"] > w["b"] > w["c"]
    assert sum(w.values()) == pytest.approx(3.0)


def test_hedge_step_decays():
    hedge = HedgeWeights(["a", "b"], learning_rate=1.0)
    hedge.update(np.array([1.0, 0.0]), {"a": 0, "b": 1})
    first = hedge.snapshot()["a"] / hedge.snapshot()["b"]
    hedge.update(np.array([1.0, 0.0]), {"a": 0, "b": 1})
    second = hedge.snapshot()["a"] / hedge.snapshot()["b"]
    assert second / first == pytest.approx(np.exp(1 / np.sqrt(2)))


def test_hedge_credits_every_proposer_of_a_shared_candidate():
    hedge = HedgeWeights(["a", "b", "c"], learning_rate=1.0)
    hedge.update(np.array([0.9, 0.1]), {"a": 0, "b": 0, "c": 1})
    w = hedge.snapshot()
    assert w["a"] == pytest.approx(w["b"]) and w["a"] > w["c"]


def test_model_exit_respects_threshold_and_min_members():
    quality = {"a": 3.0, "b": 0.2, "c": 0.1}
    shares = exit_shares(quality, 1.0)
    assert sum(shares.values()) == pytest.approx(1.0)
    assert members_to_exit(quality, 1.0, 0.2, min_members=1) == ["c", "b"]
    assert members_to_exit(quality, 1.0, 0.2, min_members=2) == ["c"]
    assert members_to_exit(quality, 1.0, 0.2, min_members=3) == []
