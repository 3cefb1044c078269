"""What a request returns: segments as they land, the final result, usage and a JSON-serialisable trace."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from .backend import MemberUsage

FinishReason = Literal["stop", "length", "stop_sequence", "timeout"]
FaultPhase = Literal["start", "draft", "score", "accept"]


class Usage(BaseModel):
    """Token counts in the counting member's tokenizer (``SpecFuse.counting_member``), plus each member's work."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    members: dict[str, MemberUsage] = Field(default_factory=dict)

    @property
    def forward_calls(self) -> int:
        return sum(m.forward_calls for m in self.members.values())


class CandidateTrace(BaseModel):
    text: str
    finished: bool
    proposers: list[str]
    mean_logprobs: dict[str, float] = Field(
        default_factory=dict, description="verifier -> mean token log-prob (its least likely token's under vote_statistic='min')"
    )
    context_free_logprobs: dict[str, float] = Field(
        default_factory=dict, description="verifier -> mean token log-prob without the question (contrast_weight > 0)"
    )
    normalized: dict[str, float] = Field(default_factory=dict, description="verifier -> normalised score")
    repetition: float = 0.0
    consensus: float = 0.0
    draft_logprobs: dict[str, float] = Field(default_factory=dict, description="proposer -> its own mean log-prob of its draft")
    combined: float = 0.0


class RoundTrace(BaseModel):
    round: int
    candidates: list[CandidateTrace]
    winner: int
    winner_member: str
    weights: dict[str, float] = Field(description="member weights used to combine this round's votes")
    active_members: list[str]
    verifiers: list[str]
    exited: list[str] = Field(default_factory=list, description="members that exited after this round")
    gated: bool = Field(False, description="the lead member was confident: its segment was accepted without a vote")
    gate_check: dict[str, float] = Field(
        default_factory=dict, description="the second opinion on a confident lead's segment (gate_check_threshold): member -> its mean or minimum token log-prob (gate_check_statistic)"
    )
    draft_seconds: float = 0.0
    verify_seconds: float = 0.0


class MemberFault(BaseModel):
    """A member that raised inside a request. It was taken out of that request (no more drafting or
    verifying, caches freed) and the request went on with the others; the next request starts it again."""

    member: str
    phase: FaultPhase = Field(description="what it was doing: start (tokenising the prompt), draft, score or accept")
    round: int = Field(description="the round it failed in (0: while the request was opened)")
    error: str = Field(description='the exception, as "Type: message"')


class Trace(BaseModel):
    rounds: list[RoundTrace] = Field(default_factory=list)
    wins: dict[str, int] = Field(default_factory=dict)
    exited: list[str] = Field(default_factory=list)
    skipped: dict[str, str] = Field(default_factory=dict, description="members that sat the request out, and why")
    final_weights: dict[str, float] = Field(default_factory=dict)
    faults: list[MemberFault] = Field(default_factory=list, description="members taken out after raising, in order")

    def summary(self) -> dict:
        """A compact view: rounds, wins per member, exited members, final weights."""
        return {
            "rounds": len(self.rounds),
            "wins": dict(self.wins),
            "exited": list(self.exited),
            "skipped": dict(self.skipped),
            "final_weights": dict(self.final_weights),
            "faults": [f.model_dump() for f in self.faults],
        }


class SegmentEvent(BaseModel):
    """One accepted segment. ``text`` is what the caller may show now (stop-string look-ahead can hold
    a few characters back until the next segment); concatenating every event's ``text`` gives the
    final output exactly. A request that times out between rounds ends with an event whose
    ``segment`` and ``member`` are empty: it only releases held-back text and the finish reason."""

    text: str
    segment: str = Field(description="the accepted segment as proposed")
    round: int
    member: str = Field(description="the member credited with the winning segment (first proposer)")
    proposers: list[str]
    scores: dict[str, float] = Field(description="member -> combined score of the candidate it proposed")
    active_members: list[str]
    finish_reason: FinishReason | None = None
    faults: list[MemberFault] = Field(default_factory=list, description="members that failed in this round and were taken out")


class ToolCall(BaseModel):
    """A parsed call: the tool's name, its arguments as a dict, and an id to answer it with."""

    id: str
    name: str
    arguments: dict[str, Any]


class GenerationResult(BaseModel):
    """``text`` is the accepted response as written (tool-call blocks included). Under a
    ``response_format``, ``parsed`` is the validated value (a pydantic instance for a model class, the
    JSON value for a schema, the text for a regex); with ``tools``, ``tool_calls`` holds the parsed
    calls and ``content`` the text answer (empty when the answer is calls)."""

    text: str
    finish_reason: FinishReason
    usage: Usage
    trace: Trace
    parsed: Any = None
    tool_calls: list[ToolCall] = Field(default_factory=list)

    @property
    def content(self) -> str:
        """The text answer: ``text``, or nothing when the answer is tool calls."""
        return "" if self.tool_calls else self.text
