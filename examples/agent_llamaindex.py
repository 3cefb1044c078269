"""A LlamaIndex FunctionAgent with a Python tool, and structured_predict, on the tiny preset."""

import asyncio

from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.prompts import PromptTemplate
from llama_index.core.tools import FunctionTool
from pydantic import BaseModel

from llamaindex_specfuse import SpecFuseLLM


def multiply(a: int, b: int) -> int:
    """Multiply two integers and return the product."""
    return a * b


class City(BaseModel):
    name: str
    country: str


async def main() -> None:
    llm = SpecFuseLLM(preset="tiny", max_new_tokens=48)
    agent = FunctionAgent(tools=[FunctionTool.from_defaults(fn=multiply)], llm=llm, initial_tool_choice="multiply",
                          system_prompt="Use the multiply tool, then state the result.")
    print("agent:", await agent.run("What is 6 times 7?", max_iterations=4))
    print("structured:", llm.structured_predict(City, PromptTemplate("{text} As JSON."), text="Paris is in France."))


if __name__ == "__main__":
    asyncio.run(main())
