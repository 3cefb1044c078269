"""Segment steps -> LlamaIndex responses: one ``ChatResponse`` per segment (text so far, delta, the
segment's provenance record in ``additional_kwargs``, the segment in ``raw``; the last one adds token
counts, usage and trace), a final ``ChatResponse`` (finish reason, counts, rounds and wins in
``additional_kwargs``; usage, trace and every segment in ``raw``), and completion streams derived
from chat streams with LlamaIndex's own converter."""

from contextlib import aclosing, closing
from typing import Any, AsyncIterator, Iterator, List

from llama_index.core.base.llms.generic_utils import stream_chat_response_to_completion_response
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponseGen,
    MessageRole,
    TextBlock,
    ToolCallBlock,
)

from specfuse_core.integration import SegmentStep, final_report


def assistant(text: str, result: Any = None) -> ChatMessage:
    """The assistant message: its text, and (on a finished request that called tools) one
    ``ToolCallBlock`` per parsed call."""
    calls = [ToolCallBlock(tool_call_id=c.id, tool_name=c.name, tool_kwargs=c.arguments) for c in getattr(result, "tool_calls", [])]
    if not calls:
        return ChatMessage(role=MessageRole.ASSISTANT, content=text)
    return ChatMessage(role=MessageRole.ASSISTANT, blocks=[TextBlock(text=text), *calls])


def segment_chunk(step: SegmentStep) -> ChatResponse:
    """One segment: the text so far, its delta and its record (tool calls: held back, then whole on
    the last one)."""
    kwargs, raw = step.record, {"segment": step.event.model_dump()}
    result = None
    if step.final is not None:
        kwargs, raw, result = {**kwargs, **step.final.token_counts()}, {**raw, **step.final.details()}, step.final.result
    return ChatResponse(message=assistant(step.text, result), delta=step.delta, raw=raw, additional_kwargs=kwargs)


def chat_response(steps: List[SegmentStep]) -> ChatResponse:
    """The whole answer of a request run to its end."""
    final = final_report(steps)
    raw = {**final.details(), "segments": [step.event.model_dump() for step in steps]}
    return ChatResponse(message=assistant(final.result.content, final.result), raw=raw, additional_kwargs=final.summary())


def closing_completions(chat_gen: ChatResponseGen) -> CompletionResponseGen:
    """LlamaIndex's stream converter, closing the chat stream (and so the request) when it is closed."""

    def gen() -> CompletionResponseGen:
        with closing(chat_gen):
            yield from stream_chat_response_to_completion_response(chat_gen)

    return gen()


def chat_stream(steps: Iterator[SegmentStep]) -> ChatResponseGen:
    """One response per segment; closing it closes the request."""

    def gen() -> ChatResponseGen:
        with closing(steps):  # type: ignore[type-var]
            for step in steps:
                yield segment_chunk(step)

    return gen()


def achat_stream(steps: AsyncIterator[SegmentStep]) -> ChatResponseAsyncGen:
    async def gen() -> ChatResponseAsyncGen:
        async with aclosing(steps):  # type: ignore[type-var]
            async for step in steps:
                yield segment_chunk(step)

    return gen()
