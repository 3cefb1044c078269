"""End to end on the real tiny preset: the official ``openai`` client and LangChain's ``ChatOpenAI``
pointed at the server get what the ensemble answers alone (greedy), with its provenance."""

from __future__ import annotations

import json

import pytest
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI
from openai import OpenAI

pytestmark = pytest.mark.integration

MODEL = "specfuse-tiny"
MAX_TOKENS = 16  # 2-core CI machines: keep every generation short
CAPITAL = [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]
COLOURS = [{"role": "system", "content": "You answer briefly."}, {"role": "user", "content": "Name three primary colours."}]


@pytest.fixture(scope="module")
def alone(tiny_ensemble):
    """What each prompt gets from the ensemble alone, greedy."""
    return {
        "capital": tiny_ensemble.generate(CAPITAL, max_new_tokens=MAX_TOKENS),
        "colours": tiny_ensemble.generate(COLOURS, max_new_tokens=MAX_TOKENS),
    }


@pytest.fixture()
def client(tiny_server):
    with OpenAI(base_url=tiny_server.base_url, api_key="unused", max_retries=0, timeout=300) as client:
        yield client


def test_openai_client_completion(client, alone):
    reply = client.chat.completions.create(model=MODEL, messages=CAPITAL, max_tokens=MAX_TOKENS, temperature=0)
    expected = alone["capital"]
    assert reply.choices[0].message.content == expected.text and "Paris" in expected.text
    assert reply.usage.completion_tokens == expected.usage.completion_tokens
    assert reply.usage.prompt_tokens == expected.usage.prompt_tokens
    assert reply.specfuse["wins"] == expected.trace.wins


def test_openai_client_stream_carries_each_segments_member(client, alone, tiny_ensemble):
    chunks = list(client.chat.completions.create(model=MODEL, messages=COLOURS, max_tokens=MAX_TOKENS, stream=True, stream_options={"include_usage": True}))
    expected = alone["colours"]
    segments = [c for c in chunks if c.choices and getattr(c, "specfuse", None) and "member" in c.specfuse]
    assert "".join(c.choices[0].delta.content for c in segments) == expected.text
    assert [c.specfuse["member"] for c in segments] == [r.winner_member for r in expected.trace.rounds]
    assert {c.specfuse["member"] for c in segments} <= set(tiny_ensemble.member_names)
    assert chunks[-1].usage.completion_tokens == expected.usage.completion_tokens


def test_langchain_chat_openai_invoke_stream_and_batch(tiny_server, alone):
    chat = ChatOpenAI(model=MODEL, base_url=tiny_server.base_url, api_key="unused", max_tokens=MAX_TOKENS, temperature=0, max_retries=0, stream_usage=True)
    capital = [HumanMessage(CAPITAL[0]["content"])]
    colours = [SystemMessage(COLOURS[0]["content"]), HumanMessage(COLOURS[1]["content"])]

    message = chat.invoke(capital)
    assert message.content == alone["capital"].text
    assert message.response_metadata["finish_reason"] == alone["capital"].finish_reason
    assert message.usage_metadata["output_tokens"] == alone["capital"].usage.completion_tokens

    streamed = list(chat.stream(colours))
    assert "".join(chunk.content for chunk in streamed) == alone["colours"].text
    assert sum(1 for chunk in streamed if chunk.content) > 1  # segment by segment, not one blob
    assert sum(chunk.usage_metadata["output_tokens"] for chunk in streamed if chunk.usage_metadata) == alone["colours"].usage.completion_tokens

    batch = chat.batch([capital, colours])  # concurrent requests: each keeps its own answer
    assert [m.content for m in batch] == [alone["capital"].text, alone["colours"].text]


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def test_openai_client_tool_call_and_tool_result_round_trip(client, tiny_ensemble):
    """A real member writes the call: the server returns the ensemble's own parsed call, then answers
    the tool's result in text, each equal to what the ensemble gives alone."""
    ask = [{"role": "user", "content": "What is the weather in Paris right now?"}]
    reply = client.chat.completions.create(model=MODEL, messages=ask, tools=[WEATHER], tool_choice="required", max_tokens=60, temperature=0)
    alone = tiny_ensemble.generate(ask, tools=[WEATHER], tool_choice="required", max_new_tokens=60)
    [call] = reply.choices[0].message.tool_calls
    assert reply.choices[0].finish_reason == "tool_calls"
    assert (call.function.name, json.loads(call.function.arguments)) == (alone.tool_calls[0].name, alone.tool_calls[0].arguments)
    assert "paris" in json.loads(call.function.arguments)["city"].lower()

    history = [*ask, reply.choices[0].message.model_dump(exclude_none=True), {"role": "tool", "tool_call_id": call.id, "content": "18 C, sunny"}]
    answer = client.chat.completions.create(model=MODEL, messages=history, tools=[WEATHER], tool_choice="none", max_tokens=MAX_TOKENS, temperature=0)
    made = {"id": call.id, "name": call.function.name, "arguments": json.loads(call.function.arguments)}
    core_history = [*ask, {"role": "assistant", "content": "", "tool_calls": [made]},
                    {"role": "tool", "tool_call_id": call.id, "name": "get_weather", "content": "18 C, sunny"}]
    expected = tiny_ensemble.generate(core_history, tools=[WEATHER], tool_choice="none", max_new_tokens=MAX_TOKENS)
    assert answer.choices[0].message.content == expected.text and expected.text.strip()
