"""ChatSpecFuse on the real tiny preset: segments as chunks, callbacks, custom events, stop strings, async."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from uuid import UUID

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from langchain_specfuse import SEGMENT_EVENT, ChatSpecFuse
from specfuse_core import SpecFuse

pytestmark = pytest.mark.integration

PROMPT = "Hello"


class Recorder(BaseCallbackHandler):
    """Records what a chat model run reports through callbacks."""

    def __init__(self) -> None:
        self.tokens: list[str] = []
        self.chunks: list[Any] = []
        self.custom: list[tuple[str, dict, UUID]] = []
        self.llm_runs: list[UUID] = []

    def on_chat_model_start(self, serialized: Any, messages: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self.llm_runs.append(run_id)

    def on_llm_new_token(self, token: str, *, chunk: Any = None, **kwargs: Any) -> None:
        self.tokens.append(token)
        self.chunks.append(chunk)

    def on_custom_event(self, name: str, data: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self.custom.append((name, data, run_id))


def _segments(message: Any) -> list[dict]:
    return message.response_metadata["segments"]


def test_invoke_reports_one_token_and_one_custom_event_per_segment(chat: ChatSpecFuse) -> None:
    recorder = Recorder()
    message = chat.invoke("Write one sentence about the sea.", config={"callbacks": [recorder]})
    segments = _segments(message)
    rounds = message.response_metadata["trace"]["rounds"]
    assert message.content and len(segments) == rounds >= 1
    assert len(recorder.tokens) == rounds  # one on_llm_new_token per accepted segment
    assert "".join(recorder.tokens) == message.content
    # the chunks handed to callbacks carry the same provenance
    assert [c.message.response_metadata["segments"][0] for c in recorder.chunks] == segments
    # custom events: one per segment, reported on the chat model run itself
    assert [name for name, _, _ in recorder.custom] == [SEGMENT_EVENT] * rounds
    assert {run_id for _, _, run_id in recorder.custom} == set(recorder.llm_runs)
    assert [data["member"] for _, data, _ in recorder.custom] == [s["member"] for s in segments]
    assert recorder.custom[-1][1]["finish_reason"] == message.response_metadata["finish_reason"]


def test_stream_yields_one_chunk_per_segment_with_provenance(chat: ChatSpecFuse) -> None:
    recorder = Recorder()
    chunks = list(chat.stream("Write one sentence about the sea.", config={"callbacks": [recorder]}))
    full = chunks[0]
    for chunk in chunks[1:]:
        full = full + chunk
    meta = full.response_metadata
    # one chunk per accepted segment, each with exactly its own record
    assert len(chunks) == meta["trace"]["rounds"] == len(meta["segments"])
    assert all(len(c.response_metadata["segments"]) == 1 for c in chunks)
    assert [s["round"] for s in meta["segments"]] == list(range(1, len(chunks) + 1))
    assert [s["text"] for s in meta["segments"]] == [c.content for c in chunks]
    members = set(chat.member_names)
    for record in meta["segments"]:
        assert record["member"] in members and record["member"] in record["proposers"]
        assert set(record["scores"]) <= members
        assert record["scores"][record["member"]] == max(record["scores"].values())
    # the last chunk alone closes the stream and carries usage, model name, finish reason and trace
    assert chunks[-1].chunk_position == "last"
    assert all(c.usage_metadata is None for c in chunks[:-1])
    assert full.usage_metadata["output_tokens"] > 0
    assert full.usage_metadata["total_tokens"] == full.usage_metadata["input_tokens"] + full.usage_metadata["output_tokens"]
    assert meta["model_name"] == "specfuse:tiny"
    assert meta["finish_reason"] in {"stop", "length", "stop_sequence"}
    assert set(meta["trace"]) >= {"rounds", "wins", "exited"}
    assert sum(meta["trace"]["wins"].values()) == meta["trace"]["rounds"]
    assert set(meta["member_usage"]) == members
    # callbacks: one token per segment, concatenating to the text
    assert recorder.tokens == [c.content for c in chunks]
    assert "".join(recorder.tokens) == full.content


def test_stop_from_field_and_call_both_apply_and_never_show(chat: ChatSpecFuse) -> None:
    base = chat.invoke(PROMPT).content
    words = base.split()
    assert len(words) >= 3, base
    late, early = words[-1], words[1]  # two stop strings; `early` occurs first
    cut_late, cut_early = base[: base.index(late)], base[: base.index(early)]

    field_only = ChatSpecFuse(preset="tiny", max_tokens=16, stop=[late])
    message = field_only.invoke(PROMPT)
    assert message.content == cut_late
    assert message.response_metadata["finish_reason"] == "stop_sequence"

    chunks = list(field_only.stream(PROMPT, stop=[early]))  # call-time stop adds to the field's
    streamed = "".join(c.content for c in chunks)
    assert streamed == cut_early
    assert all(early not in c.content and late not in c.content for c in chunks)
    assert chunks[-1].response_metadata["finish_reason"] == "stop_sequence"


async def test_astream_does_not_block_the_event_loop(chat: ChatSpecFuse, monkeypatch: pytest.MonkeyPatch) -> None:
    hops = 0
    to_thread = asyncio.to_thread

    async def counting_to_thread(func: Any, /, *args: Any, **kwargs: Any) -> Any:
        nonlocal hops
        hops += 1
        return await to_thread(func, *args, **kwargs)

    astep = SpecFuse.astep

    async def counting_astep(self: SpecFuse, request: Any) -> Any:  # rounds run on the ensemble's own threads
        nonlocal hops
        hops += 1
        return await astep(self, request)

    monkeypatch.setattr(asyncio, "to_thread", counting_to_thread)
    monkeypatch.setattr(SpecFuse, "astep", counting_astep)
    ticks: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            ticks.append(time.perf_counter())
            await asyncio.sleep(0.02)

    ticking = asyncio.create_task(ticker())
    started = time.perf_counter()
    chunks = [chunk async for chunk in chat.astream("Write one sentence about the sea.")]
    elapsed = time.perf_counter() - started
    done.set()
    await ticking

    rounds = chunks[-1].response_metadata["trace"]["rounds"]
    assert len(chunks) == rounds
    # one worker-thread hop to open the request (prompt tokenisation), then one per segment: not per token
    assert hops == rounds + 1
    # the loop kept running while the models worked
    gaps = [b - a for a, b in zip(ticks, ticks[1:])]
    assert elapsed > 0.5 and max(gaps) < 0.5, (elapsed, max(gaps))


async def test_ainvoke_reports_segments_through_async_callbacks(chat: ChatSpecFuse) -> None:
    recorder = Recorder()
    message = await chat.ainvoke(PROMPT, config={"callbacks": [recorder]})
    rounds = message.response_metadata["trace"]["rounds"]
    assert len(recorder.tokens) == rounds == len(_segments(message))
    assert "".join(recorder.tokens) == message.content
    assert [name for name, _, _ in recorder.custom] == [SEGMENT_EVENT] * rounds
    assert {run_id for _, _, run_id in recorder.custom} == set(recorder.llm_runs)


async def test_astream_events_show_segments_in_a_chain(chat: ChatSpecFuse) -> None:
    chain = ChatPromptTemplate.from_messages([("human", "{question}")]) | chat | StrOutputParser()
    kinds: list[str] = []
    custom: list[dict] = []
    model_chunks: list[Any] = []
    async for event in chain.astream_events({"question": "Write one sentence about the sea."}, version="v2"):
        if event["event"] == "on_custom_event" and event["name"] == SEGMENT_EVENT:
            kinds.append("custom")
            custom.append(event["data"])
        elif event["event"] == "on_chat_model_stream":
            kinds.append("chunk")
            model_chunks.append(event["data"]["chunk"])
    assert model_chunks and len(custom) == len(model_chunks)
    assert kinds == ["custom", "chunk"] * len(model_chunks)  # each segment's event precedes its chunk
    assert [d["member"] for d in custom] == [c.response_metadata["segments"][0]["member"] for c in model_chunks]
    assert [d["text"] for d in custom] == [c.content for c in model_chunks]


def test_stream_events_v3_reports_segments_on_the_model_run() -> None:
    model = ChatSpecFuse(preset="tiny", max_tokens=12, segment_tokens=4)  # members come from the cache
    recorder = Recorder()
    stream = model.stream_events(PROMPT, version="v3", config={"callbacks": [recorder]})
    deltas = [e["delta"]["text"] for e in stream if e["event"] == "content-block-delta"]
    message = stream.output
    rounds = message.response_metadata["trace"]["rounds"]
    assert len(deltas) == len(recorder.tokens) == len(recorder.custom) == rounds
    assert "".join(deltas) == "".join(recorder.tokens) == message.text
    assert {run_id for _, _, run_id in recorder.custom} == set(recorder.llm_runs)
    assert message.usage_metadata["output_tokens"] > 0


def test_token_counts_are_the_counting_members_and_match_the_reported_usage(chat: ChatSpecFuse) -> None:
    """Issue 13: get_num_tokens returned 0 (LangChain's GPT-2 fallback, offline). The tiny preset counts
    in its first member's tokens (SmolLM2)."""
    from langchain_core.messages import HumanMessage, SystemMessage

    messages = [SystemMessage("Be brief."), HumanMessage("Name a colour.")]
    counted = chat.get_num_tokens_from_messages(messages)
    assert counted == chat.invoke(messages, max_tokens=1, segment_tokens=1).usage_metadata["input_tokens"]
    assert chat.ensemble.counting_member.name == "smollm2-135m"
    counter = chat.ensemble.counting_member.tokenizer
    assert chat.get_token_ids("Hello, world") == counter("Hello, world", add_special_tokens=False)["input_ids"]
    assert chat.get_num_tokens("Hello, world") > 0
