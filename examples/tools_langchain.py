"""Tool calling and structured output with ChatSpecFuse on the tiny preset (runs offline on CPU)."""

from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
from pydantic import BaseModel

from langchain_specfuse import ChatSpecFuse


@tool
def get_weather(city: str) -> str:
    """Current weather in a city."""
    return "18 C and sunny"


class City(BaseModel):
    name: str
    country: str


if __name__ == "__main__":
    llm = ChatSpecFuse(preset="tiny", max_tokens=48)
    question = HumanMessage("What is the weather in Paris?")
    call = llm.bind_tools([get_weather], tool_choice="any").invoke([question])
    print("call:", call.tool_calls)
    result = ToolMessage(get_weather.invoke(call.tool_calls[0]["args"]), tool_call_id=call.tool_calls[0]["id"])
    print("answer:", llm.bind_tools([get_weather], tool_choice="none").invoke([question, call, result]).content)
    print("structured:", llm.with_structured_output(City).invoke("Paris is a city in France. As JSON."))
