"""Segment steps -> LangChain output: one ``AIMessageChunk`` per accepted segment (its provenance record
in ``response_metadata["segments"]``, a list, so merged chunks keep every record in order), and the
final ``ChatResult``. The last chunk and the result carry usage, finish reason, trace and member usage,
and, when the answer calls tools, the parsed calls (``tool_call_chunks`` / ``tool_calls``)."""

from __future__ import annotations

import json
from typing import Any

from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.tool import tool_call, tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

from specfuse_core.integration import PROVIDER, FinalReport, SegmentStep, final_report


def final_metadata(final: FinalReport, model_name: str) -> tuple[dict[str, Any], UsageMetadata]:
    counts = final.token_counts()
    metadata = {"model_name": model_name, "finish_reason": final.finish_reason, "trace": final.details()["trace"], "member_usage": final.member_usage()}
    usage = UsageMetadata(input_tokens=counts["prompt_tokens"], output_tokens=counts["completion_tokens"], total_tokens=counts["total_tokens"])
    return metadata, usage


def segment_chunk(step: SegmentStep, model_name: str) -> ChatGenerationChunk:
    """One segment; the last one adds usage, finish reason, trace and the parsed tool calls (each whole,
    as one chunk: a call is held back until it parses)."""
    metadata: dict[str, Any] = {"model_provider": PROVIDER, "segments": [step.record]}
    usage = None
    chunks = []
    if step.final is not None:
        final, usage = final_metadata(step.final, model_name)
        metadata.update(final)
        chunks = [
            tool_call_chunk(name=c.name, args=json.dumps(c.arguments, ensure_ascii=False), id=c.id, index=i)
            for i, c in enumerate(step.final.result.tool_calls)
        ]
    message = AIMessageChunk(
        content=step.delta, response_metadata=metadata, usage_metadata=usage, tool_call_chunks=chunks,
        chunk_position="last" if step.final else None,
    )
    return ChatGenerationChunk(message=message)


def chat_result(steps: list[SegmentStep], model_name: str) -> ChatResult:
    final = final_report(steps)
    metadata, usage = final_metadata(final, model_name)
    response_metadata = {"model_provider": PROVIDER, "segments": [step.record for step in steps], **metadata}
    calls = [tool_call(name=c.name, args=c.arguments, id=c.id) for c in final.result.tool_calls]
    message = AIMessage(content=final.result.content, response_metadata=response_metadata, usage_metadata=usage, tool_calls=calls)
    return ChatResult(generations=[ChatGeneration(message=message)])
