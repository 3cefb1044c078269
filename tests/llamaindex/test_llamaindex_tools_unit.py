"""SpecFuseLLM as a FunctionCallingLLM with scripted members (no weights): tools in, ToolSelection
out, tool results back in. Agents on the real preset: test_llamaindex_tools_real.py."""

from __future__ import annotations

import pytest
from llama_index.core.base.llms.types import ChatMessage, MessageRole, ToolCallBlock
from llama_index.core.tools import FunctionTool

from llamaindex_fakes import fake_llm
from specfuse_core.errors import ToolCallParseError

CALL = '<tool_call>\n{"name": "multiply", "arguments": {"a": 6, "b": 7}}\n</tool_call>'


def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


TOOL = FunctionTool.from_defaults(fn=multiply)


def test_is_a_function_calling_model():
    llm, _ = fake_llm()
    assert llm.metadata.is_function_calling_model


def test_chat_with_tools_yields_tool_selections():
    llm, members = fake_llm(CALL)
    response = llm.chat_with_tools([TOOL], user_msg="6 times 7?", tool_required=True)
    [call] = llm.get_tool_calls_from_response(response)
    assert (call.tool_name, call.tool_kwargs) == ("multiply", {"a": 6, "b": 7}) and call.tool_id
    assert members[0].formats[-1].kind == "tools"
    assert [t.name for t in members[0].conversations[-1].tools] == ["multiply"]


def test_streamed_calls_arrive_whole_on_the_last_response():
    llm, _ = fake_llm(CALL)
    responses = list(llm.stream_chat_with_tools([TOOL], user_msg="6 times 7?"))
    assert all(r.delta == "" for r in responses)
    assert llm.get_tool_calls_from_response(responses[0], error_on_no_tool_call=False) == []
    assert llm.get_tool_calls_from_response(responses[-1])[0].tool_kwargs == {"a": 6, "b": 7}


def test_a_text_answer_has_no_calls():
    llm, _ = fake_llm("It is 42.")
    response = llm.chat_with_tools([TOOL], user_msg="6 times 7?")
    assert response.message.content == "It is 42."
    assert llm.get_tool_calls_from_response(response, error_on_no_tool_call=False) == []
    with pytest.raises(ValueError, match="no"):
        llm.get_tool_calls_from_response(response)


def test_required_without_a_call_fails_named():
    llm, _ = fake_llm("It is 42.")
    with pytest.raises(ToolCallParseError):
        llm.chat_with_tools([TOOL], user_msg="6 times 7?", tool_required=True)


def test_tool_calls_and_results_in_history_reach_the_members():
    llm, members = fake_llm("It is 42.")
    call = ChatMessage(role=MessageRole.ASSISTANT, blocks=[ToolCallBlock(tool_call_id="c1", tool_name="multiply", tool_kwargs={"a": 6, "b": 7})])
    result = ChatMessage(role=MessageRole.TOOL, content="42", additional_kwargs={"tool_call_id": "c1"})
    llm.chat_with_tools([TOOL], chat_history=[ChatMessage(role="user", content="6 times 7?"), call, result])
    seen = members[0].conversations[-1]
    assert seen[1] == {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "name": "multiply", "arguments": {"a": 6, "b": 7}}]}
    assert seen[2] == {"role": "tool", "content": "42", "tool_call_id": "c1", "name": ""}
