"""Each segment's custom event is reported on the chat model's own run, whichever entry point
LangChain used (issue 13 item 5: with astream_events v2 in a chain, the first event went to the
RunnableSequence and the rest to the StrOutputParser). Scripted members: no weights."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from langchain_fakes import SEGMENTS, scripted_model
from langchain_specfuse import SEGMENT_EVENT


class Runs(BaseCallbackHandler):
    def __init__(self) -> None:
        self.model_runs: list[UUID] = []
        self.custom: list[tuple[dict, UUID]] = []
        self.tokens: list[str] = []
        self.tokens_by_run: dict[UUID, list[str]] = {}

    def on_chat_model_start(self, serialized: Any, messages: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self.model_runs.append(run_id)

    def on_llm_new_token(self, token: str, *, run_id: UUID, **kwargs: Any) -> None:
        self.tokens.append(token)
        self.tokens_by_run.setdefault(run_id, []).append(token)

    def on_custom_event(self, name: str, data: Any, *, run_id: UUID, **kwargs: Any) -> None:
        assert name == SEGMENT_EVENT
        self.custom.append((data, run_id))


def _chain(model):
    return ChatPromptTemplate.from_messages([("human", "{question}")]) | model | StrOutputParser()


@pytest.mark.parametrize("streaming", [False, True])
async def test_astream_events_v2_in_a_chain_puts_segment_events_on_the_model_run(streaming):
    model = scripted_model(streaming=streaming)
    events = [e async for e in _chain(model).astream_events({"question": "Sea?"}, version="v2")]
    (chain_start,) = [e for e in events if e["event"] == "on_chain_start" and e["name"] == "RunnableSequence"]
    (model_start,) = [e for e in events if e["event"] == "on_chat_model_start"]
    custom = [e for e in events if e["event"] == "on_custom_event" and e["name"] == SEGMENT_EVENT]
    assert [e["data"]["text"] for e in custom] == SEGMENTS
    for event in custom:
        assert event["run_id"] == model_start["run_id"]
        assert event["parent_ids"] == [chain_start["run_id"]] == model_start["parent_ids"]
    # each segment's event still precedes its chunk
    kinds = [e["event"] for e in events if e["event"] in ("on_custom_event", "on_chat_model_stream")]
    assert kinds == ["on_custom_event", "on_chat_model_stream"] * len(SEGMENTS)


async def test_astream_events_on_the_model_itself():
    model = scripted_model()
    events = [e async for e in model.astream_events("Sea?", version="v2")]
    (model_start,) = [e for e in events if e["event"] == "on_chat_model_start"]
    custom = [e for e in events if e["event"] == "on_custom_event"]
    assert len(custom) == len(SEGMENTS) and all(e["run_id"] == model_start["run_id"] for e in custom)


@pytest.mark.parametrize("entry", ["stream", "astream", "invoke", "ainvoke", "invoke-streaming", "batch", "chain-stream"])
async def test_every_entry_point_reports_on_the_model_run(entry):
    runs = Runs()
    config = {"callbacks": [runs]}
    model = scripted_model(streaming=entry == "invoke-streaming")
    if entry == "stream":
        list(model.stream("Sea?", config=config))
    elif entry == "astream":
        [c async for c in model.astream("Sea?", config=config)]
    elif entry in ("invoke", "invoke-streaming"):
        model.invoke("Sea?", config=config)
    elif entry == "ainvoke":
        await model.ainvoke("Sea?", config=config)
    elif entry == "batch":
        model.batch(["Sea?", "Sea?"], config=config)
    else:
        list(_chain(model).stream({"question": "Sea?"}, config=config))
    calls = 2 if entry == "batch" else 1
    assert len(runs.model_runs) == calls
    assert len(runs.custom) == calls * len(SEGMENTS)
    assert {run_id for _, run_id in runs.custom} == set(runs.model_runs)
    # one token callback per segment, no doubles (a batch's two runs share rounds, so theirs interleave)
    assert len(runs.tokens) == calls * len(SEGMENTS)
    assert set(runs.tokens_by_run) == set(runs.model_runs)
    assert all("".join(tokens) == "".join(SEGMENTS) for tokens in runs.tokens_by_run.values())


def test_a_given_run_id_is_kept():
    runs = Runs()
    wanted = UUID(int=7)
    list(scripted_model().stream("Sea?", config={"callbacks": [runs], "run_id": wanted}))
    assert runs.model_runs == [wanted] and {r for _, r in runs.custom} == {wanted}


def test_streaming_with_streaming_disabled_falls_back_to_invoke():
    runs = Runs()
    chunks = list(scripted_model(disable_streaming=True).stream("Sea?", config={"callbacks": [runs]}))
    assert "".join(c.content for c in chunks) == "".join(SEGMENTS)
    assert {r for _, r in runs.custom} == set(runs.model_runs)
