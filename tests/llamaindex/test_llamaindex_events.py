"""LlamaIndex's standard LLM events fire exactly once per call and once per streamed item, and
SpecFuseLLM adds one SpecFuseSegmentEvent per accepted segment: with scripted fake members (every
endpoint, fast) and with the real tiny preset (streaming, sync and async)."""

from __future__ import annotations

import asyncio

import pytest
from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.callbacks import CallbackManager, CBEventType, LlamaDebugHandler

from llamaindex_fakes import expected_segments, fake_llm

SCRIPT = "One, two, three, four, five."
SEGMENTS = expected_segments(SCRIPT, 6)
MESSAGES = [ChatMessage(role=MessageRole.USER, content="Count to five.")]

STANDARD = {
    "chat": ("LLMChatStartEvent", "LLMChatInProgressEvent", "LLMChatEndEvent"),
    "completion": ("LLMCompletionStartEvent", "LLMCompletionInProgressEvent", "LLMCompletionEndEvent"),
}
OTHER = {"chat": "completion", "completion": "chat"}


async def call(llm, method: str):
    """Run one endpoint to the end; returns the streamed items (or [response])."""
    arg = MESSAGES if "chat" in method else "Count to five."
    result = getattr(llm, method)(arg)
    if method.startswith("a"):
        result = await result
    if method.startswith("astream"):
        return [item async for item in result]
    if method.startswith("stream"):
        return list(result)
    return [result]


def check_events(recorder, method: str, segments: int) -> None:
    family = "chat" if "chat" in method else "completion"
    start, progress, end = STANDARD[family]
    streaming = "stream" in method
    assert len(recorder.named(start)) == 1
    assert len(recorder.named(end)) == 1
    assert len(recorder.named(progress)) == (segments if streaming else 0)
    assert len(recorder.named("SpecFuseSegmentEvent")) == segments
    for name in STANDARD[OTHER[family]]:
        assert recorder.named(name) == [], f"{method} must not fire {name}"
    # every event of the call belongs to the call's span, segment events included
    span = recorder.named(start)[0].span_id
    assert span is not None
    assert {e.span_id for e in recorder.named("SpecFuseSegmentEvent")} == {span}
    if streaming:  # each segment event comes just before its in-progress event
        names = [e.class_name() for e in recorder.events if e.class_name() in (progress, "SpecFuseSegmentEvent")]
        assert names == ["SpecFuseSegmentEvent", progress] * segments


METHODS = ["chat", "stream_chat", "complete", "stream_complete", "achat", "astream_chat", "acomplete", "astream_complete"]


@pytest.mark.parametrize("method", METHODS)
async def test_each_endpoint_fires_each_event_once(recorder, method):
    llm, _ = fake_llm(SCRIPT, segment_tokens=6)
    items = await call(llm, method)
    check_events(recorder, method, len(SEGMENTS))
    segment_events = recorder.named("SpecFuseSegmentEvent")
    assert [e.text for e in segment_events] == SEGMENTS
    assert [e.round for e in segment_events] == list(range(1, len(SEGMENTS) + 1))
    assert {e.member for e in segment_events} == {"alpha"}
    assert segment_events[-1].finish_reason == "stop" and segment_events[0].finish_reason is None
    assert segment_events[0].model_name == llm.metadata.model_name
    if "stream" in method:
        assert [i.delta for i in items] == SEGMENTS
        progress = recorder.named(STANDARD["chat" if "chat" in method else "completion"][1])
        assert [e.response.delta for e in progress] == SEGMENTS


@pytest.mark.parametrize("method", ["stream_chat", "astream_complete"])
async def test_legacy_callback_manager_sees_one_llm_event_pair(method):
    debug = LlamaDebugHandler()
    llm, _ = fake_llm(SCRIPT, segment_tokens=6, callback_manager=CallbackManager([debug]))
    await call(llm, method)
    pairs = debug.get_event_pairs(CBEventType.LLM)
    assert len(pairs) == 1 and len(pairs[0]) == 2


async def test_a_failing_call_fires_start_and_exception_but_no_segments(recorder):
    llm, _ = fake_llm(SCRIPT)
    with pytest.raises(ValueError):
        await llm.astream_chat([])
    assert len(recorder.named("LLMChatStartEvent")) == 1
    assert recorder.named("SpecFuseSegmentEvent") == []


# ---------------------------------------------------------------------- real models
@pytest.mark.integration
def test_real_stream_chat_events(tiny_llm, recorder):
    items = list(tiny_llm.stream_chat(MESSAGES, max_new_tokens=12))
    segments = recorder.named("SpecFuseSegmentEvent")
    assert len(items) == len(segments) >= 1
    check_events(recorder, "stream_chat", len(segments))
    assert "".join(i.delta for i in items) == items[-1].message.content == recorder.named("LLMChatEndEvent")[0].response.message.content
    members = {m.name for m in tiny_llm.ensemble.members}
    for item, event in zip(items, segments):
        assert item.delta == event.text
        assert event.member in members and item.additional_kwargs["member"] == event.member
        assert set(event.scores) <= members and set(event.active_members) <= members
    assert items[-1].additional_kwargs["finish_reason"] in {"stop", "length"}
    assert items[-1].raw["usage"]["completion_tokens"] >= 1


@pytest.mark.integration
async def test_real_astream_complete_events_without_blocking_the_loop(tiny_llm, recorder):
    ticks = 0
    running = True

    async def ticker():
        nonlocal ticks
        while running:
            ticks += 1
            await asyncio.sleep(0.01)

    task = asyncio.create_task(ticker())
    try:
        stream = await tiny_llm.astream_complete("Count to five.", max_new_tokens=12)
        items = [item async for item in stream]
    finally:
        running = False
        await task
    segments = recorder.named("SpecFuseSegmentEvent")
    assert len(items) == len(segments) >= 1
    check_events(recorder, "astream_complete", len(segments))
    assert "".join(i.delta for i in items) == items[-1].text
    # a model round takes far longer than 10 ms: the loop kept ticking while the members worked
    assert ticks >= 20
