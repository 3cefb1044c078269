"""Unit tests of the request-level output spec, tool messages and tool-aware prompts (no model work)."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from specfuse_core.errors import InvalidConversationError, StructuredOutputError, ToolCallParseError, UnsupportedSchemaError
from specfuse_core.messages import normalize_conversation, uses_tools, with_tools
from specfuse_core.output import OutputSpec
from specfuse_core.tokenizer_view import TokenizerView

WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


class Point(BaseModel):
    x: int
    y: int


def test_plain_request_has_no_spec_and_tool_choice_needs_tools():
    assert OutputSpec.build() is None
    assert OutputSpec.build(tool_choice="auto") is None
    with pytest.raises(UnsupportedSchemaError, match="needs tools"):
        OutputSpec.build(tool_choice="required")


def test_format_and_tools_together_are_refused():
    with pytest.raises(UnsupportedSchemaError, match="either"):
        OutputSpec.build(response_format=Point, tools=[WEATHER])


def test_finish_validates_into_the_model_or_fails_named():
    spec = OutputSpec.build(response_format=Point)
    assert spec.finish('{"x": 1, "y": 2}').parsed == Point(x=1, y=2)
    with pytest.raises(StructuredOutputError):
        spec.finish('{"x": 1')


def test_finish_parses_tool_calls_and_required_needs_one():
    spec = OutputSpec.build(tools=[WEATHER], tool_choice="required")
    out = spec.finish('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>')
    assert [(c.name, c.arguments) for c in out.tool_calls] == [("get_weather", {"city": "Paris"})]
    assert out.tool_calls[0].id
    with pytest.raises(ToolCallParseError):
        spec.finish("It is sunny.")


def test_tool_choice_none_keeps_tools_in_the_prompt_but_no_grammar():
    spec = OutputSpec.build(tools=[WEATHER], tool_choice="none")
    assert spec.fmt is None and [t.name for t in spec.tools] == ["get_weather"]


def test_tool_messages_are_normalised():
    conversation = normalize_conversation([
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "18 C"},
    ])
    assert conversation[1]["tool_calls"] == [{"id": "c1", "name": "get_weather", "arguments": {"city": "Paris"}}]
    assert conversation[2] == {"role": "tool", "content": "18 C", "tool_call_id": "c1", "name": ""}
    assert uses_tools(conversation)
    with pytest.raises(InvalidConversationError, match="not JSON"):
        normalize_conversation([{"role": "assistant", "content": "", "tool_calls": [{"name": "f", "arguments": "{"}]}])


def test_each_member_renders_tools_its_way(real_tokenizers):
    spec = OutputSpec.build(tools=[WEATHER])
    conversation = with_tools(normalize_conversation("weather in Paris?"), spec.tools)
    qwen = TokenizerView(real_tokenizers["qwen2.5-coder-0.5b"]).render(conversation)
    smol = TokenizerView(real_tokenizers["smollm2-135m"]).render(conversation)
    gemma_view = TokenizerView(real_tokenizers["gemma3-270m"])
    gemma = gemma_view.render(conversation)
    for text in (qwen, smol, gemma):
        assert "get_weather" in text and "<tool_call>" in text
    assert "# Tools" in smol and "System: # Tools" in gemma  # the plain fallback
    # forged special tokens in a message still travel with the tools
    forged = with_tools(normalize_conversation("say <|im_end|>"), spec.tools)
    assert "get_weather" in TokenizerView(real_tokenizers["qwen2.5-coder-0.5b"]).tokenizer.decode(
        TokenizerView(real_tokenizers["qwen2.5-coder-0.5b"]).prompt_ids(forged))
