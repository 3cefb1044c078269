"""Named variants, sharded worker runs and per-category / versus-member reporting, on synthetic records."""

from __future__ import annotations

import pytest

from specfuse_core.evaluation import runner
from specfuse_core.evaluation.command import _without_jobs, parse_variants
from specfuse_core.evaluation.datasets import EvalItem
from specfuse_core.evaluation.errors import UnknownModeError
from specfuse_core.evaluation.modes import select_modes
from specfuse_core.evaluation.report import markdown_table, summarize

from .conftest import make_record
from .test_report import _fake_ensemble


def test_parse_variants_validates_each_field():
    variants = parse_variants(['gated:gate_threshold=-0.3;roles={"b": "verify"}', "plain:"])
    assert variants == {"gated": {"gate_threshold": -0.3, "roles": {"b": "verify"}}, "plain": {}}
    with pytest.raises(ValueError):
        parse_variants(["gated:gate_threshold=2"])  # a log-prob above 0
    with pytest.raises(ValueError, match="NAME:"):
        parse_variants(["no-colon"])
    with pytest.raises(ValueError):
        parse_variants(["x:", "x:"])  # repeated name


def test_variants_are_modes_with_their_overrides():
    ens = _fake_ensemble()
    modes = select_modes(ens, ["all"], {"gated": {"gate_threshold": -0.3}})
    assert [m.name for m in modes][-1] == "gated" and modes[-1].overrides == {"gate_threshold": -0.3}
    with pytest.raises(UnknownModeError, match="differ"):
        select_modes(ens, ["all"], {"ensemble": {}})


def test_without_jobs_removes_both_spellings():
    assert _without_jobs(["eval", "--jobs", "2", "--out", "x"]) == ["eval", "--out", "x"]
    assert _without_jobs(["eval", "--jobs=3", "--out", "x"]) == ["eval", "--out", "x"]


def test_shards_split_items_and_write_no_report(tmp_path, monkeypatch):
    items = [EvalItem(id=f"q{i}", prompt="p", reference="1", checker="last-number") for i in range(5)]
    seen: list[str] = []
    monkeypatch.setattr(runner, "run_item", lambda item, mode, settings: seen.append(item.id) or make_record(mode.name, item.id, True))
    settings = runner.EvalSettings(dataset="gsm8k", max_tokens=8)
    for shard in ((0, 2), (1, 2)):
        outcome = runner.run_evaluation(_fake_ensemble(), items, tmp_path, settings, ["a"], progress=False, shard=shard)
        assert outcome.summary == {}
    assert seen == ["q0", "q2", "q4", "q1", "q3"]
    assert not (tmp_path / "summary.json").exists()
    final = runner.run_evaluation(_fake_ensemble(), items, tmp_path, settings, ["a"], progress=False)
    assert final.ran == 0 and final.summary["results"]["gsm8k"]["modes"]["a"]["items"] == 5


def test_categories_and_versus_members():
    records = [
        make_record("a", "q1", True, category="facts"),
        make_record("a", "q2", False, category="arithmetic"),
        make_record("b", "q1", False, category="facts"),
        make_record("b", "q2", False, category="arithmetic"),
        make_record("ensemble", "q1", False, category="facts"),
        make_record("ensemble", "q2", True, category="arithmetic"),
    ]
    summary = summarize(records, ["a", "b", "ensemble"], members=["a", "b"])
    ens = summary["gsm8k"]["modes"]["ensemble"]
    assert ens["per_category"] == {"facts": {"items": 1, "correct": 0, "accuracy": 0.0}, "arithmetic": {"items": 1, "correct": 1, "accuracy": 1.0}}
    assert ens["versus_members"] == {
        "items": 2, "lost_to_a_member": 1, "won_where_no_member": 1, "oracle_correct": 1,
        "best_member": {"name": "a", "correct": 1, "gained": 1, "lost": 1, "p_value": 1.0},
    }
    assert "versus_members" not in summary["gsm8k"]["modes"]["a"]
    table = markdown_table(summary)
    assert "| arithmetic | facts |" in table and "| ensemble | 2 | 50.0% | 1/1 | 0/1 | 1 | 1 | a: +1/-1 (p = 1) |" in table


def test_versus_best_member_is_paired_on_common_items():
    """The best member is the one with most items right where every mode answered; the ensemble's
    gains and losses are counted against it item by item, an item a member skipped left out."""
    right = {"q1": (True, False, True), "q2": (True, True, True), "q3": (False, True, True), "q4": (False, False, True)}
    records = []
    for item, (a, b, ens) in right.items():
        records += [make_record("a", item, a), make_record("b", item, b), make_record("ensemble", item, ens)]
    records.append(make_record("ensemble", "q5", True))  # no member answered q5: not compared
    best = summarize(records, members=["a", "b"])["gsm8k"]["modes"]["ensemble"]["versus_members"]["best_member"]
    assert best == {"name": "a", "correct": 2, "gained": 2, "lost": 0, "p_value": 0.5}  # a and b tie at 2: the first listed
