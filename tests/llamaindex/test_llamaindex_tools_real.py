"""Agents on the real tiny preset: a FunctionAgent and a ReActAgent with a simple Python tool."""

from __future__ import annotations

import pytest
from llama_index.core.tools import FunctionTool

pytestmark = pytest.mark.integration


def multiply(a: int, b: int) -> int:
    """Multiply two integers and return the product."""
    return a * b


async def test_function_agent_calls_the_tool_and_answers(tiny_llm):
    from llama_index.core.agent.workflow import FunctionAgent, ToolCallResult

    llm = tiny_llm.model_copy(update={"max_new_tokens": 48})
    agent = FunctionAgent(tools=[FunctionTool.from_defaults(fn=multiply)], llm=llm, initial_tool_choice="multiply",
                          system_prompt="Use the multiply tool, then state the result.")
    handler = agent.run("What is 6 times 7?", max_iterations=4)
    results = [event async for event in handler.stream_events() if isinstance(event, ToolCallResult)]
    response = await handler
    assert results and results[0].tool_name == "multiply" and results[0].tool_output.raw_output == 42
    assert str(response).strip()


async def test_react_agent_completes_with_the_tool(tiny_llm):
    from llama_index.core.agent.workflow import ReActAgent, ToolCallResult

    llm = tiny_llm.model_copy(update={"max_new_tokens": 64})
    agent = ReActAgent(tools=[FunctionTool.from_defaults(fn=multiply)], llm=llm)
    handler = agent.run("What is 6 times 7? Use the multiply tool.", max_iterations=6)
    results = [event async for event in handler.stream_events() if isinstance(event, ToolCallResult)]
    response = await handler
    assert str(response).strip()
    assert any(r.tool_name == "multiply" for r in results)
