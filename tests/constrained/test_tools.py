"""Tools: normalisation, tool_choice, the grammar each member drafts under, parsing of final texts, and
conversations with tool calls rendered through each member's template or the plain fallback."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

from specfuse_core.constrained import parse_tool_calls, render_with_tools, template_supports_tools, tool_mode_from, tool_specs_from, tools_response_format
from specfuse_core.constrained.tool_prompt import call_block
from specfuse_core.errors import GrammarResyncError, StructuredOutputError, ToolCallParseError, UnsupportedSchemaError
from specfuse_core.prompt_format import PlainPromptFormat

from .conftest import GEMMA, QWEN, SMOL

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}}, "required": ["city"]},
}}


class Add(BaseModel):
    """Add two integers."""

    a: int
    b: int


TOOLS = [WEATHER, Add]
CALL = call_block("get_weather", {"city": "Paris", "unit": "c"})
MEMBERS = (SMOL, GEMMA, QWEN)


def test_tools_from_openai_dicts_and_pydantic_classes():
    specs = tool_specs_from(TOOLS + [{"name": "ping"}])
    assert [s.name for s in specs] == ["get_weather", "Add", "ping"]
    assert specs[1].description == "Add two integers." and specs[1].parameters["required"] == ["a", "b"]
    assert specs[2].parameters == {"type": "object", "properties": {}}


@pytest.mark.parametrize("bad", [[], [WEATHER, WEATHER], [{"name": "bad name!"}], [{"description": "no name"}], ["get_weather"],
                                 [{"name": "x", "parameters": {"type": "string"}}]])
def test_bad_tool_lists_are_named_errors(bad):
    with pytest.raises(UnsupportedSchemaError):
        tool_specs_from(bad)


def test_tool_choice_spellings():
    specs = tool_specs_from(TOOLS)
    assert tool_mode_from(None, specs) == ("auto", None)
    assert tool_mode_from("none", specs) == ("none", None)
    assert tool_mode_from("any", specs) == tool_mode_from("required", specs) == ("required", None)
    assert tool_mode_from("Add", specs) == ("required", "Add")
    assert tool_mode_from({"type": "function", "function": {"name": "get_weather"}}, specs) == ("required", "get_weather")
    with pytest.raises(UnsupportedSchemaError, match="names no tool"):
        tool_mode_from("delete_everything", specs)
    assert tools_response_format(TOOLS, "none") is None


@pytest.mark.parametrize("member", MEMBERS)
def test_auto_allows_a_text_answer_or_calls(make_constraint, member):
    fmt = tools_response_format(TOOLS, "auto")
    text = make_constraint(member, fmt)
    text.sync_to("It is sunny in Paris today.")
    assert text.end_allowed()
    calls = make_constraint(member, fmt)
    calls.sync_to(CALL + "\n" + call_block("Add", {"a": 1, "b": 2}))
    assert calls.end_allowed()
    for partial in (CALL[:20], CALL[:-3]):
        calls.sync_to(partial)
        assert not calls.end_allowed()  # half a call is not an answer


@pytest.mark.parametrize("member", MEMBERS)
def test_required_and_named_choice_allow_only_calls(make_constraint, member):
    required = make_constraint(member, tools_response_format(TOOLS, "required"))
    with pytest.raises(GrammarResyncError):
        required.sync_to("It is sunny")
    required.sync_to(CALL)
    assert required.end_allowed()
    named = make_constraint(member, tools_response_format(TOOLS, "Add"))
    with pytest.raises(GrammarResyncError):
        named.sync_to(CALL)  # a call of another tool
    named.sync_to(call_block("Add", {"a": 1, "b": 2}))
    assert named.end_allowed()


@pytest.mark.parametrize("member", MEMBERS)
def test_call_arguments_are_constrained_by_the_tool_schema(make_constraint, member):
    constraint = make_constraint(member, tools_response_format(TOOLS, "required"))
    with pytest.raises(GrammarResyncError):
        constraint.sync_to(call_block("Add", {"a": "one", "b": 2}))
    with pytest.raises(GrammarResyncError):
        constraint.sync_to(call_block("get_weather", {"city": "Paris", "unit": "kelvin"}))


@pytest.mark.parametrize("member", MEMBERS)
def test_arguments_without_additional_properties_are_closed(make_constraint, member):
    """A tool schema that does not say ``additionalProperties`` gets no extra keys (small models copy
    the schema into the call); one that allows them keeps them; a tool without parameters takes {}."""
    open_tool = {"type": "function", "function": {"name": "tag", "parameters": {
        "type": "object", "properties": {"k": {"type": "string"}}, "additionalProperties": True}}}
    no_args = {"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {}}}}
    constraint = make_constraint(member, tools_response_format([WEATHER, open_tool, no_args], "required"))
    with pytest.raises(GrammarResyncError):
        constraint.sync_to(call_block("get_weather", {"city": "Paris", "type": "string"}))
    with pytest.raises(GrammarResyncError):
        constraint.sync_to(call_block("now", {"type": "object"}))
    constraint.sync_to(call_block("now", {}))
    assert constraint.end_allowed()
    constraint.sync_to(call_block("tag", {"k": "a", "extra": 1}))
    assert constraint.end_allowed()


def test_closing_objects_reaches_nested_schemas_and_keeps_what_a_schema_says():
    from specfuse_core.constrained.tools import closed_objects

    schema = closed_objects({
        "type": "object",
        "properties": {"a": {"type": "object", "properties": {"b": {"type": "integer"}}}, "c": {"type": "array", "items": {"properties": {}}}},
        "$defs": {"D": {"properties": {"x": {}}, "additionalProperties": {"type": "string"}}},
    })
    assert schema["additionalProperties"] is False
    assert schema["properties"]["a"]["additionalProperties"] is False
    assert schema["properties"]["c"]["items"]["additionalProperties"] is False
    assert schema["$defs"]["D"]["additionalProperties"] == {"type": "string"}


def test_qwen_may_write_its_tool_call_token(make_constraint, views):
    """Qwen2.5 has <tool_call> as one added token (151657); the grammar allows that token where the
    text is expected, so Qwen drafts the call the way it was trained, and re-sync uses it too."""
    constraint = make_constraint(QWEN, tools_response_format(TOOLS, "required"))
    open_id = views[QWEN].tokenizer.convert_tokens_to_ids("<tool_call>")
    assert bool(constraint.allowed(len(views[QWEN].tokenizer))[open_id])
    constraint.sync_to(CALL)
    assert constraint.tokens[0] == open_id and constraint.end_allowed()


def test_tool_definitions_with_local_refs_keep_resolving(make_constraint):
    class Point(BaseModel):
        x: int
        y: int

    class Move(BaseModel):
        """Move to a point."""

        to: Point

    constraint = make_constraint(SMOL, tools_response_format([Move], "required"))
    constraint.sync_to(call_block("Move", {"to": {"x": 1, "y": 2}}))
    assert constraint.end_allowed()


# ---------------------------------------------------------------------- parsing
def test_parse_calls_and_text():
    parsed = parse_tool_calls(CALL + "\n" + call_block("Add", {"a": 1, "b": 2}), TOOLS)
    assert parsed.content == "" and [(c.name, c.arguments) for c in parsed.tool_calls] == [
        ("get_weather", {"city": "Paris", "unit": "c"}), ("Add", {"a": 1, "b": 2})]
    ids = [c.id for c in parsed.tool_calls]
    assert len(set(ids)) == 2 and all(i.startswith("call_") for i in ids)
    plain = parse_tool_calls("It is sunny.", TOOLS)
    assert plain.content == "It is sunny." and plain.tool_calls == []
    as_string = '<tool_call>\n{"name": "Add", "arguments": "{\\"a\\": 1, \\"b\\": 2}"}\n</tool_call>'
    assert parse_tool_calls(as_string, TOOLS).tool_calls[0].arguments == {"a": 1, "b": 2}


@pytest.mark.parametrize("text,choice,problem", [
    ("<tool_call>\n{not json}\n</tool_call>", "auto", "not JSON"),
    ('<tool_call>\n{"name": "rm", "arguments": {}}\n</tool_call>', "auto", "not a tool"),
    (call_block("Add", {"a": 1}), "auto", "do not match"),
    ('<tool_call>\n{"name": "Add", "arguments": [1]}\n</tool_call>', "auto", "must be an object"),
    ('<tool_call>\n["Add"]\n</tool_call>', "auto", "must be"),
    ("<tool_call>\n" + json.dumps({"name": "Add", "arguments": {"a": 1, "b": 2}}), "auto", "not closed"),
    ("Sure. " + CALL, "auto", "mixes"),
    ("It is sunny.", "required", "requires a tool call"),
    (CALL, "Add", "not a tool it may call"),
    (CALL, "none", "calls a tool"),
])
def test_malformed_calls_are_named_errors(text, choice, problem):
    with pytest.raises(ToolCallParseError, match=problem):
        parse_tool_calls(text, TOOLS, choice)
    assert issubclass(ToolCallParseError, StructuredOutputError)


# ---------------------------------------------------------------------- rendering
HISTORY = [
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": "", "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
    {"role": "tool", "content": '{"temp_c": 21}', "tool_call_id": "call_1", "name": "get_weather"},
]


def test_which_templates_render_tools(tokenizers):
    assert template_supports_tools(tokenizers[QWEN])
    assert not template_supports_tools(tokenizers[SMOL])  # its template ignores tools=
    assert not template_supports_tools(tokenizers[GEMMA])  # base model: no template


def test_qwen_renders_tools_calls_and_results_with_its_own_template(tokenizers):
    prompt = render_with_tools(tokenizers[QWEN], HISTORY, tool_specs_from(TOOLS))
    assert "# Tools" in prompt and '"name": "get_weather"' in prompt and '"name": "Add"' in prompt
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>' in prompt
    assert '<|im_start|>user\n<tool_response>\n{"temp_c": 21}\n</tool_response><|im_end|>' in prompt
    assert prompt.endswith("<|im_start|>assistant\n")


@pytest.mark.parametrize("member,plain", [(SMOL, None), (GEMMA, PlainPromptFormat())])
def test_fallback_renders_the_same_conventions_as_text(tokenizers, member, plain):
    prompt = render_with_tools(tokenizers[member], HISTORY, tool_specs_from(TOOLS), plain=plain)
    assert "<tools>" in prompt and '"name": "get_weather"' in prompt and "<tool_call>\n{" in prompt
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>' in prompt
    assert '<tool_response>\n{"temp_c": 21}\n</tool_response>' in prompt
    if member == SMOL:
        assert prompt.startswith("<|im_start|>system\n# Tools") and prompt.endswith("<|im_start|>assistant\n")
    else:
        assert prompt.startswith("<bos>System: # Tools") and prompt.endswith("Assistant:")


def test_fallback_keeps_a_system_message_and_merges_consecutive_results(tokenizers):
    history = [{"role": "system", "content": "Be brief."}] + HISTORY + [
        {"role": "tool", "content": "second", "tool_call_id": "call_2"}]
    prompt = render_with_tools(tokenizers[SMOL], history, tool_specs_from(TOOLS))
    assert prompt.startswith("<|im_start|>system\nBe brief.\n\n# Tools")
    assert prompt.count("<|im_start|>user") == 2  # the question, then both results in one message
    assert "</tool_response>\n<tool_response>\nsecond" in prompt


@pytest.mark.parametrize("bad", [[{"role": "robot", "content": "x"}], [{"role": "user", "content": 3}],
                                 [{"role": "assistant", "tool_calls": [{"function": {"name": "x", "arguments": "{bad"}}]}]])
def test_malformed_tool_conversations_are_named_errors(tokenizers, bad):
    from specfuse_core.errors import InvalidConversationError

    with pytest.raises(InvalidConversationError):
        render_with_tools(tokenizers[SMOL], bad, tool_specs_from(TOOLS))
