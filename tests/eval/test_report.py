"""Report generation on synthetic records, and resume / interrupt behaviour of the runner."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from specfuse_core.engine import SpecFuse
from specfuse_core.evaluation import runner
from specfuse_core.evaluation.datasets import EvalItem
from specfuse_core.evaluation.errors import UnknownModeError
from specfuse_core.evaluation.modes import select_modes
from specfuse_core.evaluation.records import append_record, read_records
from specfuse_core.evaluation.report import PLOT_FILE, SUMMARY_FILE, TABLE_FILE, summarize, write_report

from .conftest import make_record


def _records():
    return [
        make_record("a", "q1", True, calls=10),
        make_record("a", "q2", False, calls=20),
        make_record("ensemble", "q1", True, calls=40),
        make_record("ensemble", "q2", True, calls=60),
        make_record("ensemble", "q3", False, calls=50),
    ]


def test_summary_numbers():
    summary = summarize(_records(), ["a", "ensemble"])["gsm8k"]
    assert summary["common_items"] == 2
    a, ens = summary["modes"]["a"], summary["modes"]["ensemble"]
    assert a["items"] == 2 and a["accuracy"] == 0.5 and a["forward_calls_per_item"] == 15
    assert ens["accuracy"] == pytest.approx(2 / 3) and ens["accuracy_on_common_items"] == 1.0
    assert ens["forward_calls_total"] == 150
    assert ens["win_share"] == {"a": 0.5, "b": 0.5}
    assert ens["mean_active_members"] == 1.5
    assert ens["per_member_per_item"]["b"]["verified_tokens"] == 15
    assert ens["rounds_per_item"] == 2


def test_report_files_and_table_numbers(tmp_path):
    document = write_report(tmp_path, _records(), {"modes": ["a", "ensemble"], "settings": {"dataset": "gsm8k"}, "command": "specfuse eval x"})
    for name in (SUMMARY_FILE, TABLE_FILE, PLOT_FILE):
        assert (tmp_path / name).stat().st_size > 0
    assert (tmp_path / PLOT_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((tmp_path / SUMMARY_FILE).read_text())
    assert saved["results"] == document["results"]
    table = (tmp_path / TABLE_FILE).read_text()
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]] for line in table.splitlines() if line.startswith("| a ") or line.startswith("| ensemble ")}
    assert rows["a"][:2] == ["2", "50.0%"] and rows["a"][2] == "15.0"
    assert rows["ensemble"][:2] == ["3", "66.7%"] and rows["ensemble"][2] == "50.0"
    assert "`specfuse eval x`" in table


def test_cut_by_the_cap_counts_answers_that_hit_the_token_limit(tmp_path):
    records = _records()
    records[2] = records[2].model_copy(update={"finish_reason": "length"})
    records[4] = records[4].model_copy(update={"finish_reason": "length"})
    write_report(tmp_path, records, {"modes": ["a", "ensemble"], "settings": {"dataset": "gsm8k"}, "command": "specfuse eval x"})
    lines = (tmp_path / TABLE_FILE).read_text().splitlines()
    header = next(line for line in lines if line.startswith("| mode "))
    column = [c.strip() for c in header.split("|")[1:-1]].index("cut by the cap")
    cells = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[1:-1]][column] for line in lines if line.startswith(("| a ", "| ensemble "))}
    assert cells == {"a": "0", "ensemble": "2"}


def test_ifeval_columns():
    details = {"instructions": ["x", "y"], "strict": [True, False], "loose": [True, True], "prompt_strict": False, "prompt_loose": True}
    records = [make_record("a", "k1", False, dataset="ifeval", details=details)]
    rates = summarize(records)["ifeval"]["modes"]["a"]["ifeval"]
    assert rates == {"prompt_strict": 0.0, "prompt_loose": 1.0, "instruction_strict": 0.5, "instruction_loose": 1.0, "instructions": 2}


def test_torn_last_line_is_skipped_and_repaired(tmp_path):
    path = tmp_path / "results.jsonl"
    append_record(path, make_record("a", "q1", True))
    with path.open("a") as handle:
        handle.write('{"dataset": "gsm8k", "mo')  # killed mid-write
    assert [r.item_id for r in read_records(path)] == ["q1"]
    append_record(path, make_record("a", "q2", True))
    assert [r.item_id for r in read_records(path)] == ["q1", "q2"]


def _fake_ensemble():
    members = [SimpleNamespace(name="a"), SimpleNamespace(name="b")]
    return SpecFuse(members)  # only names are used: run_item is replaced below


def test_select_modes():
    ens = _fake_ensemble()
    assert [m.name for m in select_modes(ens)] == ["a", "b", "ensemble", "ensemble_exit", "ensemble_hedge"]
    modes = select_modes(ens, ["members", "ensemble_exit"])
    assert [m.name for m in modes] == ["a", "b", "ensemble_exit"]
    assert modes[0].is_member and modes[0].ensemble.member_names == ["a"]
    assert modes[2].overrides == {"model_exit": True} and not modes[2].is_member
    with pytest.raises(UnknownModeError, match="ensemble_hedge"):
        select_modes(ens, ["nope"])


def test_interrupt_leaves_partial_report_and_resume_skips_done(tmp_path, monkeypatch):
    items = [EvalItem(id=f"q{i}", prompt="p", reference="1", checker="last-number") for i in range(3)]
    calls: list[tuple[str, str]] = []

    def fake_run_item(item, mode, settings, stop_after=None):
        if stop_after is not None and len(calls) >= stop_after:
            raise KeyboardInterrupt
        calls.append((item.id, mode.name))
        return make_record(mode.name, item.id, item.id != "q1", dataset=settings.dataset)

    settings = runner.EvalSettings(dataset="gsm8k", max_tokens=8)
    monkeypatch.setattr(runner, "run_item", lambda *a: fake_run_item(*a, stop_after=4))
    first = runner.run_evaluation(_fake_ensemble(), items, tmp_path, settings, ["a", "ensemble"], progress=False)
    assert first.interrupted and first.ran == 4
    assert calls == [("q0", "a"), ("q0", "ensemble"), ("q1", "a"), ("q1", "ensemble")]  # item by item
    summary = json.loads((tmp_path / SUMMARY_FILE).read_text())
    assert summary["interrupted"] is True
    assert summary["results"]["gsm8k"]["modes"]["a"]["items"] == 2
    assert "Partial report" in (tmp_path / TABLE_FILE).read_text()

    calls.clear()
    monkeypatch.setattr(runner, "run_item", lambda *a: fake_run_item(*a))
    second = runner.run_evaluation(_fake_ensemble(), items, tmp_path, settings, ["a", "ensemble"], progress=False)
    assert not second.interrupted and second.skipped == 4
    assert calls == [("q2", "a"), ("q2", "ensemble")]
    modes = second.summary["results"]["gsm8k"]["modes"]
    assert modes["a"]["items"] == 3 and modes["a"]["accuracy"] == pytest.approx(2 / 3)
    assert len(read_records(tmp_path / runner.RESULTS_FILE)) == 6


def test_resume_refuses_other_settings(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "run_item", lambda item, mode, settings: make_record(mode.name, item.id, True))
    items = [EvalItem(id="q0", prompt="p", reference="1", checker="last-number")]
    runner.run_evaluation(_fake_ensemble(), items, tmp_path, runner.EvalSettings(dataset="gsm8k", max_tokens=8), ["a"], progress=False)
    with pytest.raises(runner.SettingsMismatchError, match="another --out"):
        runner.run_evaluation(_fake_ensemble(), items, tmp_path, runner.EvalSettings(dataset="gsm8k", max_tokens=16), ["a"], progress=False)
    other_members = runner.EvalSettings(dataset="gsm8k", max_tokens=8, member_options={"onednn_hidden_layers": False})
    with pytest.raises(runner.SettingsMismatchError, match="another --out"):  # members loaded another way
        runner.run_evaluation(_fake_ensemble(), items, tmp_path, other_members, ["a"], progress=False)


def test_members_alone_resume_under_other_ensemble_settings(tmp_path, monkeypatch):
    """Variants and the calibration only change ensemble modes: a members-only run resumes across
    them (a preset's calibration changed), a run with an ensemble mode still refuses."""
    monkeypatch.setattr(runner, "run_item", lambda item, mode, settings: make_record(mode.name, item.id, True))
    items = [EvalItem(id=f"q{i}", prompt="p", reference="1", checker="last-number") for i in range(2)]
    first = runner.EvalSettings(dataset="gsm8k", max_tokens=8)
    runner.run_evaluation(_fake_ensemble(), items[:1], tmp_path, first, ["a", "ensemble"], progress=False)
    other = first.model_copy(update={"variants": {"strict": {"gate_threshold": -0.1}}})
    resumed = runner.run_evaluation(_fake_ensemble(), items, tmp_path, other, ["a"], progress=False)
    assert resumed.ran == 1 and resumed.skipped == 1
    with pytest.raises(runner.SettingsMismatchError, match="another --out"):
        runner.run_evaluation(_fake_ensemble(), items, tmp_path, other, ["a", "ensemble"], progress=False)
    with pytest.raises(runner.SettingsMismatchError):  # what members read still has to match
        runner.run_evaluation(_fake_ensemble(), items, tmp_path, first.model_copy(update={"max_tokens": 16}), ["a"], progress=False)


def test_a_run_resumes_when_its_settings_arrive_another_way(tmp_path):
    """An override that a calibration later ships gives the same ensemble settings: the run resumes;
    another value still refuses."""
    trust = {"member_weights": {"a": 1.0}, "gate_threshold": -0.7, "gate_check_threshold": -4.0}
    by_override = runner.EvalSettings(dataset="gsm8k", max_tokens=8, config={"gate_check_rounds": 4})
    runner._check_settings(tmp_path, by_override.model_copy(update={"calibration": trust}))
    shipped = runner.EvalSettings(dataset="gsm8k", max_tokens=8, calibration={**trust, "gate_check_rounds": 4})
    runner._check_settings(tmp_path, shipped)  # resumes
    with pytest.raises(runner.SettingsMismatchError, match="another --out"):
        runner._check_settings(tmp_path, shipped.model_copy(update={"calibration": {**trust, "gate_check_rounds": 5}}))
    with pytest.raises(runner.SettingsMismatchError):  # without the window at all
        runner._check_settings(tmp_path, shipped.model_copy(update={"calibration": trust}))


def test_rescore_rechecks_stored_answers(tmp_path, monkeypatch):
    """A checker fix applies to finished answers: --rescore re-checks them without generating."""
    items = [EvalItem(id="q0", prompt="p", reference="4", checker="gsm8k")]
    stale = make_record("a", "q0", False).model_copy(update={"answer": "It is 4 bolts.\n3. Then add", "extracted": "3"})
    append_record(tmp_path / runner.RESULTS_FILE, stale)
    monkeypatch.setattr(runner, "run_item", lambda *a: pytest.fail("nothing should be generated"))
    settings = runner.EvalSettings(dataset="gsm8k", max_tokens=8)
    outcome = runner.run_evaluation(_fake_ensemble(), items, tmp_path, settings, ["a"], progress=False, rescore_stored=True)
    [record] = read_records(tmp_path / runner.RESULTS_FILE)
    assert record.correct is True and record.extracted == "4"
    assert outcome.summary["results"]["gsm8k"]["modes"]["a"]["correct"] == 1
    wrong = runner.rescore([record.model_copy(update={"answer": "no idea"})], items)
    assert wrong[0].correct is False
