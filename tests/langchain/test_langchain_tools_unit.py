"""ChatSpecFuse tool calling and structured output with scripted members (no weights): the adapter's
translation of calls, chunks, tool messages and parsers. The constrained drafting itself is tested on
real models (tests/core/test_structured_output_real.py, test_langchain_tools_real.py)."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from pydantic import BaseModel

from specfuse_core import EnsembleConfig, SpecFuse
from specfuse_core.errors import ToolCallParseError

from langchain_fakes import ScriptedMember

CALL = ["<tool_call>\n", '{"name": "get_weather", ', '"arguments": {"city": "Paris"}}\n</tool_call>']


@tool
def get_weather(city: str) -> str:
    """Current weather in a city."""
    return f"18 C in {city}"


class Point(BaseModel):
    x: int
    y: int


def model_saying(segments):
    from langchain_specfuse import ChatSpecFuse

    members = [ScriptedMember("a", segments), ScriptedMember("b", segments)]
    return ChatSpecFuse(ensemble=SpecFuse(members, EnsembleConfig())), members


def test_a_call_becomes_tool_calls_and_every_member_drafts_under_the_tools_grammar():
    model, members = model_saying(CALL)
    message = model.bind_tools([get_weather], tool_choice="any").invoke("Weather in Paris?")
    assert message.content == ""
    assert [(c["name"], c["args"]) for c in message.tool_calls] == [("get_weather", {"city": "Paris"})]
    assert message.tool_calls[0]["id"].startswith("call_")
    assert all(m.formats and m.formats[0].kind == "tools" for m in members)
    assert [t.name for t in members[0].conversations[0].tools] == ["get_weather"]


def test_streamed_calls_are_held_back_then_arrive_whole_as_tool_call_chunks():
    model, _ = model_saying(CALL)
    chunks = list(model.bind_tools([get_weather]).stream("Weather in Paris?"))
    assert all(c.content == "" for c in chunks)  # no half-written call is ever shown as text
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged = merged + chunk
    assert [(c["name"], c["args"]) for c in merged.tool_calls] == [("get_weather", {"city": "Paris"})]
    assert merged.tool_call_chunks[0]["args"] == '{"city": "Paris"}'


def test_a_text_answer_with_tools_streams_as_text():
    model, _ = model_saying(["It is ", "sunny."])
    chunks = list(model.bind_tools([get_weather]).stream("Weather?"))
    assert "".join(c.content for c in chunks) == "It is sunny." and chunks[0].content == "It is "


def test_tool_messages_reach_the_members_as_tool_results():
    model, members = model_saying(["It is 18 C."])
    history = [
        HumanMessage("Weather in Paris?"),
        AIMessage("", tool_calls=[{"name": "get_weather", "args": {"city": "Paris"}, "id": "c1"}]),
        ToolMessage("18 C", tool_call_id="c1"),
    ]
    assert model.bind_tools([get_weather]).invoke(history).content == "It is 18 C."
    seen = members[0].conversations[0]
    assert seen[1]["tool_calls"] == [{"id": "c1", "name": "get_weather", "arguments": {"city": "Paris"}}]
    assert seen[2] == {"role": "tool", "content": "18 C", "tool_call_id": "c1", "name": ""}


def test_a_required_call_that_is_not_there_fails_named():
    model, _ = model_saying(["No call."])
    with pytest.raises(ToolCallParseError):
        model.bind_tools([get_weather], tool_choice="any").invoke("Weather?")


@pytest.mark.parametrize("method", ["json_schema", "function_calling", "json_mode"])
def test_structured_output_methods_parse_into_the_class(method):
    script = ['{"x": 3, ', '"y": 4}'] if method != "function_calling" else ["<tool_call>\n", '{"name": "Point", "arguments": {"x": 3, "y": 4}}\n</tool_call>']
    model, members = model_saying(script)
    assert model.with_structured_output(Point, method=method).invoke("a point") == Point(x=3, y=4)
    kind = {"json_schema": "json_schema", "json_mode": "json_object", "function_calling": "tools"}[method]
    assert members[0].formats[0].kind == kind


def test_include_raw_keeps_the_message_and_the_parsed_value():
    model, _ = model_saying(['{"x": 3, ', '"y": 4}'])
    out = model.with_structured_output(Point, include_raw=True).invoke("a point")
    assert out["parsed"] == Point(x=3, y=4) and out["parsing_error"] is None and isinstance(out["raw"], AIMessage)


def test_structured_output_with_a_dict_schema_gives_a_dict():
    schema = {"title": "Point", "type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}
    model, _ = model_saying(['{"x": 3}'])
    assert model.with_structured_output(schema).invoke("x?") == {"x": 3}


def test_anthropic_style_tool_use_blocks_restating_the_calls_are_accepted():
    from langchain_specfuse.messages import to_conversation

    call = {"id": "call_1", "name": "get_weather", "args": {"city": "Paris"}}
    restated = AIMessage(
        content=[{"type": "text", "text": "Let me look."}, {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}}],
        tool_calls=[call],
    )
    turn = to_conversation([HumanMessage("Weather in Paris?"), restated])[1]
    assert turn["content"] == "Let me look."
    assert [c["name"] for c in turn["tool_calls"]] == ["get_weather"]
    stray = AIMessage(content=[{"type": "tool_use", "id": "other", "name": "x", "input": {}}], tool_calls=[call])
    with pytest.raises(ValueError, match="tool_use"):
        to_conversation([stray])


@pytest.mark.parametrize("method", ["json_schema", "function_calling", "json_mode"])
def test_pydantic_v1_classes_parse_into_the_class_too(method):
    from pydantic import v1

    class PointV1(v1.BaseModel):
        x: int
        y: int

    script = ['{"x": 3, ', '"y": 4}'] if method != "function_calling" else ["<tool_call>\n", '{"name": "PointV1", "arguments": {"x": 3, "y": 4}}\n</tool_call>']
    model, members = model_saying(script)
    out = model.with_structured_output(PointV1, method=method).invoke("a point")
    assert isinstance(out, PointV1) and (out.x, out.y) == (3, 4)
