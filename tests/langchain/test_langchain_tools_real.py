"""ChatSpecFuse tools and structured output on the real tiny preset."""

from __future__ import annotations

import pytest
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
from pydantic import BaseModel

pytestmark = pytest.mark.integration


@tool
def get_weather(city: str) -> str:
    """Current weather in a city."""
    return "18 C and sunny"


class City(BaseModel):
    name: str
    country: str


def test_weather_call_then_answer(chat):
    llm = chat.bind_tools([get_weather], tool_choice="any")
    question = HumanMessage("What is the weather in Paris?")
    call = llm.invoke([question], max_tokens=40)
    assert [(c["name"], c["args"]) for c in call.tool_calls] == [("get_weather", {"city": "Paris"})]
    result = ToolMessage(get_weather.invoke(call.tool_calls[0]["args"]), tool_call_id=call.tool_calls[0]["id"])
    answer = chat.bind_tools([get_weather], tool_choice="none").invoke([question, call, result], max_tokens=24)
    assert answer.tool_calls == [] and answer.content.strip()


def test_structured_output_streams_and_parses(chat):
    parts = list(chat.with_structured_output(City).stream("Paris is a city in France. Give its name and country as JSON.", max_tokens=40))
    assert isinstance(parts[-1], City) and parts[-1].name
