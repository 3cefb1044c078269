"""What the harness writes per item and mode: answer, verdict, cost and a compact trace (pydantic, one
JSON line each, so a run can resume from the file)."""

from __future__ import annotations

import fcntl
import json
import logging
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from ..results import GenerationResult, MemberUsage

logger = logging.getLogger(__name__)


class ItemCost(BaseModel):
    wall_seconds: float
    forward_calls: int
    rounds: int
    completion_tokens: int
    members: dict[str, MemberUsage] = Field(default_factory=dict, description="drafted/verified tokens and forward calls per member")
    wins: dict[str, int] = Field(default_factory=dict, description="rounds each member's candidate won")
    active_member_rounds: int = Field(0, description="sum over rounds of the members that drafted; / rounds = mean active")


class RoundSummary(BaseModel):
    """One round, enough to see why a candidate won: each candidate's text, proposers and scores."""

    round: int
    winner: str
    active: list[str]
    candidates: list[dict[str, Any]]
    gated: bool = False
    gate_check: dict[str, float] = Field(default_factory=dict, description="the second opinion on a confident lead (gate_check_threshold)")


class ItemRecord(BaseModel):
    dataset: str
    mode: str
    item_id: str
    category: str | None = None
    answer: str
    finish_reason: str | None = None
    correct: bool
    extracted: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    cost: ItemCost
    trace: dict[str, Any] = Field(default_factory=dict, description="Trace.summary() plus per-round candidates")
    error: str | None = Field(None, description="the exception, when generation failed (counted as wrong)")

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.dataset, self.mode, self.item_id)


def cost_of(result: GenerationResult, wall_seconds: float) -> ItemCost:
    rounds = result.trace.rounds
    return ItemCost(
        wall_seconds=wall_seconds,
        forward_calls=result.usage.forward_calls,
        rounds=len(rounds),
        completion_tokens=result.usage.completion_tokens,
        members=dict(result.usage.members),
        wins=dict(result.trace.wins),
        active_member_rounds=sum(len(r.active_members) for r in rounds),
    )


def trace_summary(result: GenerationResult) -> dict[str, Any]:
    summary = result.trace.summary()
    summary["rounds_detail"] = [
        RoundSummary(
            round=r.round,
            winner=r.winner_member,
            active=list(r.active_members),
            gated=r.gated,
            gate_check={k: round(v, 4) for k, v in r.gate_check.items()},
            candidates=[
                {
                    "text": c.text,
                    "proposers": c.proposers,
                    "combined": round(c.combined, 4),
                    "mean_logprobs": {k: round(v, 4) for k, v in c.mean_logprobs.items()},
                    "draft_logprobs": {k: round(v, 4) for k, v in c.draft_logprobs.items()},
                }
                for c in r.candidates
            ],
        ).model_dump()
        for r in result.trace.rounds
    ]
    return summary


def read_records(path: Path) -> list[ItemRecord]:
    """Records already written. A torn last line (the process was killed mid-write) is skipped."""
    if not path.is_file():
        return []
    records = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                records.append(ItemRecord.model_validate(json.loads(line)))
            except (json.JSONDecodeError, ValidationError):
                logger.warning("%s line %d is not a complete record; it is ignored and that item runs again", path, number)
    return records


def append_record(path: Path, record: ItemRecord) -> None:
    """One line per record, flushed, so an interrupted run keeps everything that finished."""
    with path.open("a", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # worker processes (--jobs) append to the same file
        try:
            torn = path.stat().st_size > 0 and path.read_bytes()[-1:] != b"\n"
            handle.write(("\n" if torn else "") + record.model_dump_json() + "\n")
            handle.flush()
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
