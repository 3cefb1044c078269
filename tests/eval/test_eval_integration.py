"""End to end on the real tiny preset: ``specfuse eval`` on 2 GSM8K items (8-token answers), one member
alone and the ensemble with model exit, then the report files are checked against the per-item records."""

from __future__ import annotations

import json

import pytest

from specfuse_core.cli import main
from specfuse_core.evaluation.records import read_records

pytestmark = pytest.mark.integration

MODES = ["smollm2-135m", "ensemble_exit"]
ITEMS, MAX_TOKENS = 2, 8  # two items show every item is covered; answers are cut anyway (GSM8K needs more)


@pytest.fixture(scope="session")
def tiny_ensemble():
    """The real tiny preset, loaded once (the CLI reuses the same process-wide member cache)."""
    from specfuse_core import SpecFuse

    return SpecFuse.from_preset("tiny")


@pytest.fixture(scope="session")
def eval_run(tiny_ensemble, data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "gsm8k"
    argv = ["eval", "--dataset", "gsm8k", "--data-dir", str(data_dir), "--limit", str(ITEMS), "--max-tokens", str(MAX_TOKENS),
            "--modes", ",".join(MODES), "--out", str(out), "--no-progress"]
    code = main(argv)
    return code, out, argv


def test_exit_code_and_files(eval_run):
    code, out, _ = eval_run
    assert code == 0
    for name in ("results.jsonl", "summary.json", "report.md", "accuracy_vs_calls.png", "run.json"):
        assert (out / name).stat().st_size > 0, name


def test_records_cover_every_item_and_mode_with_real_costs(eval_run, tiny_ensemble):
    _, out, _ = eval_run
    records = read_records(out / "results.jsonl")
    assert sorted((r.mode, r.item_id) for r in records) == sorted((m, f"gsm8k-{i}") for m in MODES for i in range(ITEMS))
    for r in records:
        assert r.error is None and r.answer.strip()
        assert 0 < r.cost.completion_tokens <= MAX_TOKENS
        assert r.cost.rounds >= 1 and r.cost.forward_calls > 0 and r.cost.wall_seconds > 0
        if r.mode == "smollm2-135m":
            assert set(r.cost.members) == {"smollm2-135m"}
            assert r.cost.active_member_rounds == r.cost.rounds  # one member: rounds just decode
            assert all(len(rd["candidates"]) == 1 for rd in r.trace["rounds_detail"])
        else:
            assert set(r.cost.members) == set(tiny_ensemble.member_names)
            assert sum(r.cost.wins.values()) == r.cost.rounds


def test_summary_and_table_match_records(eval_run):
    _, out, argv = eval_run
    records = read_records(out / "results.jsonl")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] is False and summary["modes"] == MODES
    assert summary["command"] == "specfuse " + " ".join(argv)
    table = (out / "report.md").read_text()
    for mode in MODES:
        mine = [r for r in records if r.mode == mode]
        stats = summary["results"]["gsm8k"]["modes"][mode]
        assert stats["items"] == ITEMS
        assert stats["correct"] == sum(r.correct for r in mine)
        assert stats["forward_calls_total"] == sum(r.cost.forward_calls for r in mine)
        row = next(line for line in table.splitlines() if line.startswith(f"| {mode} |"))
        assert f"| {100 * stats['accuracy']:.1f}% |" in row and f"| {stats['forward_calls_per_item']:.1f} |" in row
    ensemble = summary["results"]["gsm8k"]["modes"]["ensemble_exit"]
    assert 1.0 <= ensemble["mean_active_members"] <= 3.0
    assert sum(ensemble["win_share"].values()) == pytest.approx(1.0)


def test_second_run_resumes_without_generating(eval_run, monkeypatch):
    from specfuse_core.evaluation import runner

    _, out, argv = eval_run
    monkeypatch.setattr(runner, "run_item", lambda *a: pytest.fail("a finished item ran again"))
    assert main(argv) == 0
    assert len(read_records(out / "results.jsonl")) == ITEMS * len(MODES)
