"""`specfuse compare` and `specfuse calibrate --from-run` on synthetic eval folders (no models)."""

from __future__ import annotations

import json

from specfuse_core.calibration import Calibration
from specfuse_core.cli import main
from specfuse_core.evaluation.records import append_record
from specfuse_core.evaluation.runner import RESULTS_FILE, SETTINGS_FILE, EvalSettings

from .conftest import make_record

ANSWERS = {"fact-00": "Paris.", "fact-01": "Tokyo.", "fact-02": "Rome."}


def _run(folder, modes: dict[str, dict[str, bool]], members=("a", "b")):
    folder.mkdir()
    (folder / SETTINGS_FILE).write_text(EvalSettings(dataset="dev", max_tokens=8, members=list(members)).model_dump_json())
    for mode, verdicts in modes.items():
        for item, right in verdicts.items():
            answer = ANSWERS[item] if right else "I do not know."
            record = make_record(mode, item, not right, dataset="dev", category="facts")  # stored verdict is stale on purpose
            append_record(folder / RESULTS_FILE, record.model_copy(update={"answer": answer}))
    return folder


def test_compare_rechecks_and_renames(tmp_path):
    members = _run(tmp_path / "members", {"a": {"fact-00": True, "fact-01": False}, "b": {"fact-00": False, "fact-01": False}})
    base = _run(tmp_path / "base", {"ensemble": {"fact-00": False, "fact-01": True}})
    assert main(["compare", str(members), str(base), "--rename", "base:ensemble=uncalibrated", "--out", str(tmp_path / "cmp")]) == 0
    summary = json.loads((tmp_path / "cmp" / "summary.json").read_text())["results"]["dev"]["modes"]
    assert summary["a"]["correct"] == 1 and summary["b"]["correct"] == 0  # re-checked, not the stale flags
    assert summary["uncalibrated"]["versus_members"] == {
        "items": 2, "lost_to_a_member": 1, "won_where_no_member": 1, "oracle_correct": 1,
        "best_member": {"name": "a", "correct": 1, "gained": 1, "lost": 1, "p_value": 1.0},
    }


def test_compare_on_common_items_only(tmp_path, capsys):
    """A run stopped early: --common-only counts every mode on the items all of them finished;
    --exclude leaves a mode out of the comparison."""
    members = _run(tmp_path / "members", {"a": {"fact-00": True, "fact-01": True, "fact-02": False}, "b": {"fact-00": False, "fact-01": True, "fact-02": True}})
    early = _run(tmp_path / "early", {"ensemble": {"fact-00": True}})
    assert main(["compare", str(members), str(early), "--common-only", "--out", str(tmp_path / "cmp")]) == 0
    modes = json.loads((tmp_path / "cmp" / "summary.json").read_text())["results"]["dev"]["modes"]
    assert {name: (m["items"], m["correct"]) for name, m in modes.items()} == {"a": (1, 1), "b": (1, 0), "ensemble": (1, 1)}
    assert main(["compare", str(members), str(early), "--out", str(tmp_path / "all")]) == 0  # without it: every item
    modes = json.loads((tmp_path / "all" / "summary.json").read_text())["results"]["dev"]["modes"]
    assert modes["a"]["items"] == 3
    assert main(["compare", str(members), str(early), "--common-only", "--exclude", "early:ensemble", "--out", str(tmp_path / "m")]) == 0
    modes = json.loads((tmp_path / "m" / "summary.json").read_text())["results"]["dev"]["modes"]
    assert set(modes) == {"a", "b"} and modes["a"]["items"] == 3  # the early run left out
    assert main(["compare", str(members), "--exclude", "b", "--out", str(tmp_path / "b")]) == 0  # a mode of any run
    assert set(json.loads((tmp_path / "b" / "summary.json").read_text())["results"]["dev"]["modes"]) == {"a"}
    assert main(["compare", str(members), "--exclude", "early:ensmble", "--out", str(tmp_path / "typo")]) == 2
    assert "names no mode" in capsys.readouterr().err
    none = _run(tmp_path / "none", {"ensemble": {"fact-02": True}})
    lone = _run(tmp_path / "lone", {"a": {"fact-00": True}})
    assert main(["compare", str(lone), str(none), "--common-only", "--out", str(tmp_path / "x")]) == 2
    assert "no item was finished by every mode" in capsys.readouterr().err


def test_compare_refuses_clashing_modes(tmp_path, capsys):
    one = _run(tmp_path / "one", {"ensemble": {"fact-00": True}})
    two = _run(tmp_path / "two", {"ensemble": {"fact-00": True}})
    assert main(["compare", str(one), str(two), "--out", str(tmp_path / "cmp")]) == 2
    assert "rename" in capsys.readouterr().err


def test_calibrate_from_run_writes_a_loadable_file(tmp_path):
    run = _run(tmp_path / "members", {"a": {"fact-00": True, "fact-01": True, "fact-02": True}, "b": {"fact-00": False, "fact-01": False, "fact-02": True}})
    out = tmp_path / "cal.json"
    assert main(["calibrate", "--from-run", str(run), "--gate-threshold", "-0.4", "--setting", "end_of_turn_scoring=text_only", "--out", str(out)]) == 0
    calibration = Calibration.load(out)
    assert calibration.lead_member == "a" and calibration.items == 3
    assert calibration.accuracy == {"a": 1.0, "b": 1 / 3} and calibration.roles == {"b": "verify"}  # 1/3 < half of 1.0
    assert calibration.gate_threshold == -0.4 and calibration.settings == {"end_of_turn_scoring": "text_only"}


def test_calibrate_from_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["calibrate", "--from-run", str(tmp_path), "--out", str(tmp_path / "c.json")]) == 2
    assert "is not a" in capsys.readouterr().err.replace("\n", " ")


def test_calibrate_with_router_keeps_each_prompt_and_its_verdicts(tmp_path):
    from specfuse_core.evaluation.datasets import load_dataset

    run = _run(tmp_path / "members", {"a": {"fact-00": True, "fact-01": False}, "b": {"fact-00": False, "fact-01": True}})
    out = tmp_path / "cal.json"
    assert main(["calibrate", "--from-run", str(run), "--router", "--out", str(out)]) == 0
    router = Calibration.load(out).router
    prompts = {item.id: item.prompt for item in load_dataset("dev")}
    assert [(i.prompt, i.correct) for i in router.items] == [
        (prompts["fact-00"], {"a": True, "b": False}), (prompts["fact-01"], {"a": False, "b": True}),
    ]


def test_calibrate_records_the_routers_demotion_role(tmp_path, capsys):
    run = _run(tmp_path / "members", {"a": {"fact-00": True, "fact-01": False}, "b": {"fact-00": False, "fact-01": True}})
    out = tmp_path / "cal.json"
    assert main(["calibrate", "--from-run", str(run), "--router", "--router-demotes-to", "reserve", "--out", str(out)]) == 0
    assert Calibration.load(out).router_demotes_to == "reserve"
    assert main(["calibrate", "--from-run", str(run), "--router-demotes-to", "reserve", "--out", str(tmp_path / "no.json")]) == 2
    assert "needs --router" in capsys.readouterr().err and not (tmp_path / "no.json").exists()


def test_leave_one_out_needs_a_routing_calibration(tmp_path, capsys):
    run = _run(tmp_path / "members", {"a": {"fact-00": True}, "b": {"fact-00": False}})
    plain = tmp_path / "plain.json"
    assert main(["calibrate", "--from-run", str(run), "--out", str(plain)]) == 0
    code = main(["eval", "--dataset", "dev", "--calibration", str(plain), "--leave-one-out", "--out", str(tmp_path / "e")])
    assert code == 2 and "--router" in capsys.readouterr().err
