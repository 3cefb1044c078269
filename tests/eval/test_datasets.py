"""Loading the public sets and custom JSONL files; bad input raises named errors that say what to do."""

from __future__ import annotations

import json

import pytest

from specfuse_core.errors import SpecFuseError
from specfuse_core.evaluation.datasets import default_data_dir, load_dataset
from specfuse_core.evaluation.errors import BadDatasetLineError, DatasetNotFoundError, UnknownCheckerError, UnknownDatasetError


def test_gsm8k_items_carry_the_final_number(data_dir):
    items = load_dataset("gsm8k", data_dir, limit=3)
    assert [i.id for i in items] == ["gsm8k-0", "gsm8k-1", "gsm8k-2"]
    assert items[0].reference == "18" and items[0].checker == "gsm8k"
    assert items[0].prompt.startswith("Janet")


def test_ifeval_items_keep_the_record(data_dir):
    items = load_dataset("ifeval", data_dir / "ifeval_input_data.jsonl", limit=2)  # a file path works too
    assert items[0].id == "ifeval-1000"
    assert items[0].reference["instruction_id_list"][0] == "punctuation:no_comma"


def test_default_data_dir_is_shared_data_next_to_the_project(tmp_path):
    assert default_data_dir(tmp_path) is None
    (tmp_path / "shared" / "data").mkdir(parents=True)
    project = tmp_path / "project"
    project.mkdir()
    assert default_data_dir(project) == (tmp_path / "shared" / "data").resolve()


def test_missing_public_file_says_how_to_get_it(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="grade-school-math") as caught:
        load_dataset("gsm8k", tmp_path)
    assert isinstance(caught.value, SpecFuseError)


def test_unknown_dataset():
    with pytest.raises(UnknownDatasetError, match="gsm8k, ifeval"):
        load_dataset("mmlu")


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_custom_jsonl(tmp_path):
    path = _write(tmp_path / "qa.jsonl", [json.dumps({"prompt": "2+2?", "answer": "4"}), "", json.dumps({"id": "x", "prompt": "Capital of France?", "answer": "Paris"})])
    items = load_dataset(str(path), checker="contains")
    assert [(i.id, i.reference, i.checker) for i in items] == [("qa-0", "4", "contains"), ("x", "Paris", "contains")]
    assert len(load_dataset(str(path), checker="contains", limit=1)) == 1


def test_bad_json_line_names_file_and_line(tmp_path):
    path = _write(tmp_path / "bad.jsonl", [json.dumps({"prompt": "a", "answer": "b"}), "{not json"])
    with pytest.raises(BadDatasetLineError, match="line 2") as caught:
        load_dataset(str(path))
    assert caught.value.line == 2


def test_missing_field(tmp_path):
    path = _write(tmp_path / "bad.jsonl", [json.dumps({"question": "a", "answer": "b"})])
    with pytest.raises(BadDatasetLineError, match="prompt"):
        load_dataset(str(path))


def test_duplicate_ids_and_bad_regex(tmp_path):
    dup = _write(tmp_path / "dup.jsonl", [json.dumps({"id": "1", "prompt": "a", "answer": "b"})] * 2)
    with pytest.raises(BadDatasetLineError, match="unique"):
        load_dataset(str(dup))
    regex = _write(tmp_path / "re.jsonl", [json.dumps({"prompt": "a", "answer": "(unclosed"})])
    with pytest.raises(BadDatasetLineError, match="regular expression"):
        load_dataset(str(regex), checker="regex")


def test_unknown_checker_and_missing_custom_file(tmp_path):
    path = _write(tmp_path / "qa.jsonl", [json.dumps({"prompt": "a", "answer": "b"})])
    with pytest.raises(UnknownCheckerError):
        load_dataset(str(path), checker="fuzzy")
    with pytest.raises(DatasetNotFoundError):
        load_dataset(str(tmp_path / "nope.jsonl"))


def test_the_tests_read_the_public_sets_from_the_repository(data_dir):
    """Issue 13 item 11: the tests needed ../shared/data beside the checkout."""
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    assert data_dir.resolve().is_relative_to(repo)
    assert (data_dir / "README.md").read_text().count("license") >= 1
    assert len(load_dataset("gsm8k", data_dir)) == 5
    assert [i.id for i in load_dataset("ifeval", data_dir)][:2] == ["ifeval-1000", "ifeval-1001"]
