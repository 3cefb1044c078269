"""Response bodies: ``chat.completion``, ``chat.completion.chunk`` and ``/v1/models``, shaped like
OpenAI's, plus a ``specfuse`` extension field carrying provenance (which member's segment won)."""

from __future__ import annotations

import time
import uuid
from typing import Any

from ..integration import SegmentStep
from ..results import GenerationResult, SegmentEvent, Usage
from .tools import openai_tool_calls

# OpenAI has no "timeout" or "stop_sequence": a stop string is "stop", a cut-short answer "length".
# The ensemble's own reason stays in the extension field.
FINISH_REASONS = {"stop": "stop", "stop_sequence": "stop", "length": "length", "timeout": "length"}


def finish_reason(result: GenerationResult) -> str:
    """OpenAI's finish reason; an answer that calls tools finishes with ``tool_calls``."""
    return "tool_calls" if result.tool_calls else FINISH_REASONS[result.finish_reason]


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def usage_body(usage: Usage) -> dict[str, int]:
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens, "total_tokens": usage.total_tokens}


def segment_provenance(event: SegmentEvent) -> dict[str, Any]:
    body: dict[str, Any] = {"member": event.member, "round": event.round, "proposers": list(event.proposers)}
    if event.faults:
        body["faults"] = [fault.model_dump() for fault in event.faults]
    return body


class ChunkWriter:
    """The chunks of one streamed completion: they share id, creation time and model."""

    def __init__(self, model: str, include_usage: bool) -> None:
        self.id = completion_id()
        self.created = int(time.time())
        self.model = model
        self.include_usage = include_usage

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        chunk = {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model, "system_fingerprint": None, "choices": choices}
        if self.include_usage:
            chunk["usage"] = None  # like OpenAI: null on every chunk but the last
        chunk.update(extra)
        return chunk

    @staticmethod
    def _choice(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}

    def role(self) -> dict[str, Any]:
        return self._chunk([self._choice({"role": "assistant", "content": ""})])

    def segment(self, step: SegmentStep) -> dict[str, Any]:
        """One accepted segment. With tools, text that is (or may become) a call is held back (empty
        content); the parsed calls come whole, with the last segment, as ``delta.tool_calls``."""
        delta: dict[str, Any] = {"content": step.delta}
        if step.final is not None and step.final.result.tool_calls:
            delta["tool_calls"] = [{"index": i, **call} for i, call in enumerate(openai_tool_calls(step.final.result))]
        return self._chunk([self._choice(delta)], specfuse=segment_provenance(step.event))

    def finish(self, result: GenerationResult) -> dict[str, Any]:
        return self._chunk([self._choice({}, finish_reason(result))], specfuse=_summary(result))

    def usage(self, result: GenerationResult) -> dict[str, Any]:
        chunk = self._chunk([])
        chunk["usage"] = usage_body(result.usage)
        return chunk


def completion_body(model: str, result: GenerationResult, events: list[SegmentEvent]) -> dict[str, Any]:
    summary = _summary(result)
    summary["segments"] = [{"text": e.text, **segment_provenance(e)} for e in events]
    return {
        "id": completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": _message(result),
                "logprobs": None,
                "finish_reason": finish_reason(result),
            }
        ],
        "usage": usage_body(result.usage),
        "specfuse": summary,
    }


def _message(result: GenerationResult) -> dict[str, Any]:
    """The assistant message: its text, or (content null) the tool calls it makes."""
    if result.tool_calls:
        return {"role": "assistant", "content": None, "refusal": None, "tool_calls": openai_tool_calls(result)}
    return {"role": "assistant", "content": result.text, "refusal": None}


def _summary(result: GenerationResult) -> dict[str, Any]:
    """The ensemble's view of a finished request: its own finish reason, wins, member work, faults."""
    return {
        "finish_reason": result.finish_reason,
        "rounds": len(result.trace.rounds),
        "wins": dict(result.trace.wins),
        "members": {name: usage.model_dump() for name, usage in result.usage.members.items()},
        "faults": [fault.model_dump() for fault in result.trace.faults],
    }


def models_body(model: str, created: int, describe: dict[str, Any]) -> dict[str, Any]:
    return {"object": "list", "data": [model_body(model, created, describe)]}


def model_body(model: str, created: int, describe: dict[str, Any]) -> dict[str, Any]:
    members = [{"name": m["name"], "context_window": m.get("context_window")} for m in describe["members"]]
    return {"id": model, "object": "model", "created": created, "owned_by": "specfuse", "specfuse": {"members": members}}
