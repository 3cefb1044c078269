"""Per-input trust (routing.py): nearest labelled prompts decide whom to trust for a new prompt.
Plain tables, no models."""

from __future__ import annotations

import json

import pytest

from specfuse_core.calibration import Calibration, CalibrationFileError
from specfuse_core.routing import PromptRouter, RoutedItem, char_ngrams

SUMS = [f"Tom has {n} apples and buys {n + 4} more. How many apples does Tom have now?" for n in range(3, 13)]
WORDS = [f"Answer with one word only: what colour is {thing}?" for thing in ("grass", "the sky", "snow", "coal", "a lemon", "blood", "an orange", "a plum", "milk", "ink")]


def router(**kwargs) -> PromptRouter:
    items = [RoutedItem(prompt=p, correct={"small": True, "big": False}) for p in SUMS]
    items += [RoutedItem(prompt=p, correct={"small": False, "big": True}) for p in WORDS]
    return PromptRouter(items=items, **kwargs)


def test_ngrams_fold_case_spacing_and_digits():
    assert char_ngrams("Tom  has 12") == char_ngrams("tom has 47")
    assert char_ngrams("ab", sizes=(3,)) == {" ab": 1, "ab ": 1}


def test_the_nearest_labelled_prompts_decide_the_local_accuracy():
    route = router(neighbours=5)
    sums = route.local_accuracy("Ann has 30 pears and buys 9 more. How many pears does Ann have now?")
    words = route.local_accuracy("Answer with one word only: what colour is the sea?")
    assert sums["small"] > 0.7 and sums["big"] < 0.3  # the set-wide 0.5 pulls both a little back
    assert words["big"] > 0.7 and words["small"] < 0.3


def test_a_prompt_unlike_every_labelled_one_is_not_routed():
    assert router().local_accuracy("Zxqv?") is None


def test_the_set_wide_accuracy_pulls_a_few_neighbours_back():
    sums = "Ann has 30 pears and buys 9 more. How many pears does Ann have now?"
    light = router(neighbours=5, prior_strength=0.0).local_accuracy(sums)
    heavy = router(neighbours=5, prior_strength=1000.0).local_accuracy(sums)
    assert light == {"small": 1.0, "big": 0.0}
    assert heavy["small"] == pytest.approx(0.5, abs=0.01) and heavy["big"] == pytest.approx(0.5, abs=0.01)


def test_leave_one_out_ignores_the_identical_labelled_prompt():
    items = [RoutedItem(prompt="What is the capital of Peru?", correct={"a": True, "b": False})]
    items += [RoutedItem(prompt="What is the capital of Chile?", correct={"a": False, "b": True})]
    kept = PromptRouter(items=items, neighbours=1, prior_strength=0.0)
    held_out = kept.model_copy(update={"leave_one_out": True})
    assert kept.local_accuracy("What is the capital of Peru?") == {"a": 1.0, "b": 0.0}
    assert held_out.local_accuracy("What is the capital of Peru?") == {"a": 0.0, "b": 1.0}


def test_routed_items_must_name_the_same_members():
    with pytest.raises(ValueError, match="same members"):
        PromptRouter(items=[RoutedItem(prompt="x", correct={"a": True}), RoutedItem(prompt="y", correct={"b": True})])


def test_a_calibration_refits_lead_weights_and_roles_per_prompt():
    calibration = Calibration(member_weights={"small": 0.6, "big": 1.0}, lead_member="big", gate_threshold=-0.7, items=20, router=router(neighbours=5))
    sums = calibration.for_prompt("Ann has 30 pears and buys 9 more. How many pears does Ann have now?")
    assert sums.lead_member == "small" and sums.member_weights["small"] == 1.0 > sums.member_weights["big"]
    assert sums.roles == {"big": "verify"} and sums.gate_threshold == -0.7
    assert calibration.for_prompt("Answer with one word only: what colour is the sea?").lead_member == "big"
    assert calibration.for_prompt("Zxqv?") is calibration
    assert Calibration(member_weights={"a": 1.0}).for_prompt("anything") is not None


def test_the_router_can_demote_to_reserve_but_never_lets_a_verify_only_member_draft(tmp_path):
    """``router_demotes_to="reserve"``: the member the router finds weak on a prompt becomes a reserve;
    a member the calibration makes verify-only everywhere stays so, even where the router rates it."""
    items = [RoutedItem(prompt=p, correct={"small": True, "big": False, "base": True}) for p in SUMS]
    items += [RoutedItem(prompt=p, correct={"small": False, "big": True, "base": False}) for p in WORDS]
    calibration = Calibration(
        member_weights={"small": 0.6, "big": 1.0, "base": 0.3}, roles={"base": "verify"}, lead_member="big", gate_threshold=-0.7,
        items=20, router=PromptRouter(items=items, neighbours=5), router_demotes_to="reserve",
    )
    sums = calibration.for_prompt("Ann has 30 pears and buys 9 more. How many pears does Ann have now?")
    assert sums.lead_member == "small" and sums.roles == {"big": "reserve", "base": "verify"}  # base is right here, still verify
    words = calibration.for_prompt("Answer with one word only: what colour is the sea?")
    assert words.roles == {"small": "reserve", "base": "verify"}
    plain = calibration.model_copy(update={"router_demotes_to": "verify"}).for_prompt("Answer with one word only: what colour is the sea?")
    assert plain.roles == {"small": "verify", "base": "verify"}
    # where the verify-only member is the best on a prompt it still never leads: the lead is chosen among the others
    base_best = [RoutedItem(prompt=p, correct={"small": False, "big": i < 4, "base": True}) for i, p in enumerate(SUMS)]
    tilted = calibration.model_copy(update={"router": PromptRouter(items=base_best + items[len(SUMS):], neighbours=5)})
    plain_fit = tilted.model_copy(update={"router_demotes_to": "verify"}).for_prompt("Ann has 30 pears and buys 9 more. How many pears does Ann have now?")
    assert plain_fit.lead_member == "base"  # what the plain fit would do
    sums = tilted.for_prompt("Ann has 30 pears and buys 9 more. How many pears does Ann have now?")
    assert sums.lead_member == "big" and sums.roles == {"small": "reserve", "base": "verify"}
    path = calibration.save(tmp_path / "reserve.json")
    assert Calibration.load(path).router_demotes_to == "reserve"
    with pytest.raises(CalibrationFileError, match="router_demotes_to"):
        Calibration.load(_write(tmp_path / "bad.json", {**json.loads(path.read_text()), "router_demotes_to": "draft"}))


def test_reserve_if_stronger_backs_only_a_lead_trusted_less_overall(tmp_path):
    """``router_demotes_to="reserve_if_stronger"``: the big member backs the small one where the router
    makes small the lead; where big leads, the small member only verifies (no draft, no vote)."""
    calibration = Calibration(
        member_weights={"small": 0.6, "big": 1.0}, lead_member="big", gate_threshold=-0.7, items=20,
        router=router(neighbours=5), router_demotes_to="reserve_if_stronger",
    )
    sums = calibration.for_prompt("Ann has 30 pears and buys 9 more. How many pears does Ann have now?")
    assert sums.lead_member == "small" and sums.roles == {"big": "reserve"}
    words = calibration.for_prompt("Answer with one word only: what colour is the sea?")
    assert words.lead_member == "big" and words.roles == {"small": "verify"}
    assert Calibration.load(calibration.save(tmp_path / "stronger.json")).router_demotes_to == "reserve_if_stronger"


def _write(path, content):
    path.write_text(json.dumps(content), encoding="utf-8")
    return path


def test_a_routing_calibration_round_trips_and_checks_its_members(tmp_path):
    calibration = Calibration(member_weights={"small": 0.6, "big": 1.0}, lead_member="big", items=20, router=router())
    assert Calibration.load(calibration.save(tmp_path / "cal.json")) == calibration
    data = json.loads((tmp_path / "cal.json").read_text())
    data["member_weights"] = {"small": 0.6, "other": 1.0}
    data["lead_member"] = "other"
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(CalibrationFileError, match="router's members"):
        Calibration.load(tmp_path / "bad.json")


def test_a_near_identical_labelled_prompt_outweighs_a_crowd_of_loose_neighbours():
    """The exact question was labelled (only 'big' right), ten loosely similar prompts favour 'small'."""
    exact = RoutedItem(prompt="How many minutes are there in an hour?", correct={"small": False, "big": True})
    crowd = [RoutedItem(prompt=f"There are {n} boxes with {n + 2} pens in each box. How many pens are there?", correct={"small": True, "big": False}) for n in range(10)]
    weighted = PromptRouter(items=[exact, *crowd], neighbours=11, prior_strength=0.0, min_similarity=0.05)
    counted = weighted.model_copy(update={"similarity_power": 0.0})
    question = "How many minutes are there in an hour?"
    assert weighted.local_accuracy(question)["big"] > 0.5
    assert counted.local_accuracy(question)["small"] > 0.5  # every neighbour alike: the crowd wins
