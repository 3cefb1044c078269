"""Tool calling and response formats through the server, driven by the official ``openai`` client and
LangChain's ``ChatOpenAI`` on the small real ensemble (random weights, real tokenizers): the grammar
forces a call or a JSON value, so what comes back is the engine's own answer, in OpenAI's shapes."""

from __future__ import annotations

import json
from typing import Literal

import openai
import pytest
from langchain_core.messages import AIMessageChunk, HumanMessage
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from .conftest import MODEL

ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"enum": ["Paris", "Rome"]}}, "required": ["city"]},
    },
}


class City(BaseModel):
    city: Literal["Paris", "Rome"]  # bounded: random members would write a string until the cap
    sunny: bool


def test_a_required_tool_call_comes_back_as_tool_calls(client, small_ensemble):
    reply = client.chat.completions.create(model=MODEL, messages=ASK, tools=[WEATHER], tool_choice="required", max_tokens=60)
    alone = small_ensemble.generate(ASK, tools=[WEATHER], tool_choice="required", max_new_tokens=60)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    [call] = choice.message.tool_calls
    assert call.type == "function" and call.function.name == alone.tool_calls[0].name == "get_weather"
    assert json.loads(call.function.arguments) == alone.tool_calls[0].arguments
    assert call.id.startswith("call_")
    assert reply.usage.completion_tokens == alone.usage.completion_tokens


def test_a_streamed_call_arrives_whole_and_never_as_text(client):
    chunks = list(client.chat.completions.create(
        model=MODEL, messages=ASK, tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_tokens=60, stream=True,
    ))
    choices = [c.choices[0] for c in chunks if c.choices]
    assert "".join(c.delta.content or "" for c in choices) == ""  # the call's text is held back
    calls = [call for c in choices for call in (c.delta.tool_calls or [])]
    assert len(calls) == 1 and calls[0].index == 0 and calls[0].function.name == "get_weather"
    assert set(json.loads(calls[0].function.arguments)) == {"city"}
    assert choices[-1].finish_reason == "tool_calls"
    segments = [c for c in chunks if c.choices and getattr(c, "specfuse", None) and "member" in c.specfuse]
    assert len(segments) > 1  # still one chunk per accepted segment


def test_a_tool_result_conversation_is_answered(client, small_ensemble):
    """The tool message's name comes from the call it answers; the engine gets the same conversation."""
    history = [
        *ASK,
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18 C and sunny"},
    ]
    reply = client.chat.completions.create(model=MODEL, messages=history, tools=[WEATHER], tool_choice="none", max_tokens=8)
    core_history = [*ASK, {"role": "assistant", "content": "", "tool_calls": [{"id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}]},
                    {"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": "18 C and sunny"}]
    alone = small_ensemble.generate(core_history, tools=[WEATHER], tool_choice="none", max_new_tokens=8)
    assert reply.choices[0].message.content == alone.text and reply.choices[0].message.tool_calls is None
    assert reply.usage.prompt_tokens == alone.usage.prompt_tokens


def test_openai_parse_with_a_pydantic_response_format(client):
    reply = client.chat.completions.parse(model=MODEL, messages=ASK, response_format=City, max_tokens=120)
    parsed = reply.choices[0].message.parsed
    assert isinstance(parsed, City)
    assert City.model_validate_json(reply.choices[0].message.content) == parsed


def test_an_answer_cut_before_it_parses_is_an_error_not_broken_json(client, small_server):
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model=MODEL, messages=ASK, response_format={"type": "json_object"}, max_tokens=2)
    assert caught.value.code == "structured_output_invalid" and "max_tokens" in caught.value.message
    stream = client.chat.completions.create(model=MODEL, messages=ASK, tools=[WEATHER], tool_choice="required", max_tokens=3, stream=True)
    with pytest.raises(openai.APIError, match="max_tokens"):
        list(stream)


def test_chat_openai_bind_tools_invoke_and_stream(small_server):
    chat = ChatOpenAI(model=MODEL, base_url=small_server.base_url, api_key="unused", max_tokens=60, max_retries=0)
    bound = chat.bind_tools([WEATHER], tool_choice="get_weather")
    message = bound.invoke([HumanMessage(ASK[0]["content"])])
    assert [call["name"] for call in message.tool_calls] == ["get_weather"] and set(message.tool_calls[0]["args"]) == {"city"}
    merged = AIMessageChunk(content="")
    for chunk in bound.stream([HumanMessage(ASK[0]["content"])]):
        merged += chunk
    assert [call["name"] for call in merged.tool_calls] == ["get_weather"]
    assert merged.tool_calls[0]["args"] == message.tool_calls[0]["args"]  # greedy: the same call both ways


def test_chat_openai_structured_output(small_server):
    chat = ChatOpenAI(model=MODEL, base_url=small_server.base_url, api_key="unused", max_tokens=120, max_retries=0)
    assert isinstance(chat.with_structured_output(City, method="json_schema").invoke("Weather in Rome?"), City)
    assert isinstance(chat.with_structured_output(City, method="function_calling").invoke("Weather in Rome?"), City)


@pytest.mark.parametrize("prompt", ["Tell me about rivers.", ASK[0]["content"]])
def test_auto_tool_choice_streams_what_the_engine_answers(client, small_ensemble, prompt):
    """Under "auto" the answer may be text or a call: the stream's text and calls are the engine's."""
    messages = [{"role": "user", "content": prompt}]
    alone = small_ensemble.generate(messages, tools=[WEATHER], max_new_tokens=40)
    chunks = list(client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER], max_tokens=40, stream=True))
    choices = [c.choices[0] for c in chunks if c.choices]
    assert "".join(c.delta.content or "" for c in choices) == alone.content
    calls = [call for c in choices for call in (c.delta.tool_calls or [])]
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [(c.name, c.arguments) for c in alone.tool_calls]
    assert choices[-1].finish_reason == ("tool_calls" if alone.tool_calls else alone.finish_reason)
