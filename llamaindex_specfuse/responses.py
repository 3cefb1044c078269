"""Segment steps -> LlamaIndex responses: one ``ChatResponse`` per segment (text so far, delta, the
segment's provenance record in ``additional_kwargs``, the segment in ``raw``; the last one adds token
counts, usage and trace), a final ``ChatResponse`` (finish reason, counts, rounds and wins in
``additional_kwargs``; usage, trace and every segment in ``raw``), and completion streams derived
from chat streams with LlamaIndex's own converter."""

from contextlib import aclosing, closing
from typing import AsyncIterator, Iterator, List

from llama_index.core.base.llms.generic_utils import stream_chat_response_to_completion_response
from llama_index.core.base.llms.types import ChatMessage, ChatResponse, ChatResponseAsyncGen, ChatResponseGen, CompletionResponseGen, MessageRole

from specfuse_core.integration import SegmentStep, final_report


def segment_chunk(step: SegmentStep) -> ChatResponse:
    """One segment: the text so far, its delta and its record."""
    kwargs, raw = step.record, {"segment": step.event.model_dump()}
    if step.final is not None:
        kwargs, raw = {**kwargs, **step.final.token_counts()}, {**raw, **step.final.details()}
    return ChatResponse(
        message=ChatMessage(role=MessageRole.ASSISTANT, content=step.text), delta=step.event.text, raw=raw, additional_kwargs=kwargs
    )


def chat_response(steps: List[SegmentStep]) -> ChatResponse:
    """The whole answer of a request run to its end."""
    final = final_report(steps)
    raw = {**final.details(), "segments": [step.event.model_dump() for step in steps]}
    return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=final.result.text), raw=raw, additional_kwargs=final.summary())


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
