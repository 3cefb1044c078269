"""Fixtures of the evaluation tests: excerpts of the public sets (tests/data), synthetic records, a fake ensemble."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from specfuse_core.evaluation.records import ItemCost, ItemRecord
from specfuse_core.results import MemberUsage

# A few items of each public set, kept in the repository with their source and license (see its
# README): the tests need nothing outside the checkout. Full evaluation runs read ../shared/data.
DATA_DIR = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA_DIR


@pytest.fixture(scope="session")
def ifeval_records(data_dir) -> dict[int, dict]:
    """IFEval records by key."""
    with (data_dir / "ifeval_input_data.jsonl").open(encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle]
    return {r["key"]: r for r in records}


def make_record(mode: str, item: str, correct: bool, calls: int = 10, dataset: str = "gsm8k", **extra) -> ItemRecord:
    """A synthetic record: two members, ``calls`` forward calls split between them, 2 rounds."""
    members = {
        "a": MemberUsage(drafted_tokens=20, verified_tokens=5, forward_calls=calls - calls // 2),
        "b": MemberUsage(drafted_tokens=10, verified_tokens=15, forward_calls=calls // 2),
    }
    cost = ItemCost(
        wall_seconds=1.5, forward_calls=calls, rounds=2, completion_tokens=12, members=members,
        wins={"a": 1, "b": 1}, active_member_rounds=3,
    )
    return ItemRecord(dataset=dataset, mode=mode, item_id=item, answer=f"answer {item}", finish_reason="stop", correct=correct, cost=cost, **extra)
