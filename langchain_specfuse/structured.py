"""``with_structured_output`` for ChatSpecFuse: the three methods map onto the core's constraints,
so every reply parses by construction (the core fails the request with ``StructuredOutputError``
otherwise); this module only picks the binding and the parser."""

from __future__ import annotations

from operator import itemgetter
from typing import Any, Literal

from langchain_core.language_models import LanguageModelInput
from langchain_core.output_parsers import JsonOutputKeyToolsParser, JsonOutputParser, PydanticOutputParser, PydanticToolsParser
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
from langchain_core.utils.function_calling import convert_to_json_schema, convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass
from pydantic import BaseModel

Method = Literal["json_schema", "function_calling", "json_mode"]


def _is_model(schema: Any) -> bool:
    """A pydantic class, v2 or ``pydantic.v1`` (replies are parsed into it)."""
    return isinstance(schema, type) and is_basemodel_subclass(schema)


def _is_v2_model(schema: Any) -> bool:
    """A class the core takes as a response format as is (v1 classes travel as their JSON Schema)."""
    return isinstance(schema, type) and issubclass(schema, BaseModel)


def structured_runnable(llm: Any, schema: Any, method: Method, include_raw: bool) -> Runnable[LanguageModelInput, Any]:
    """``llm`` bound to the constraint for ``method``, piped into the matching parser."""
    if method == "function_calling":
        if schema is None:
            raise ValueError("method='function_calling' needs a schema")
        tool = convert_to_openai_tool(schema)
        name = tool["function"]["name"]
        bound = llm.bind_tools([tool], tool_choice=name, ls_structured_output_format={"kwargs": {"method": method}, "schema": tool})
        parser: Runnable = PydanticToolsParser(tools=[schema], first_tool_only=True) if _is_model(schema) else JsonOutputKeyToolsParser(key_name=name, first_tool_only=True)
    elif method == "json_schema":
        if schema is None:
            raise ValueError("method='json_schema' needs a schema")
        response_format = schema if _is_v2_model(schema) else convert_to_json_schema(schema)
        bound = llm.bind(response_format=response_format, ls_structured_output_format={"kwargs": {"method": method}, "schema": convert_to_json_schema(schema)})
        parser = PydanticOutputParser(pydantic_object=schema) if _is_model(schema) else JsonOutputParser()
    elif method == "json_mode":
        bound = llm.bind(response_format={"type": "json_object"}, ls_structured_output_format={"kwargs": {"method": method}, "schema": schema})
        parser = PydanticOutputParser(pydantic_object=schema) if _is_model(schema) else JsonOutputParser()
    else:
        raise ValueError(f"method must be 'json_schema', 'function_calling' or 'json_mode', not {method!r}")
    if not include_raw:
        return bound | parser
    parsed = RunnablePassthrough.assign(parsed=itemgetter("raw") | parser, parsing_error=lambda _: None)
    failed = RunnablePassthrough.assign(parsed=lambda _: None)
    return RunnableMap(raw=bound) | parsed.with_fallbacks([failed], exception_key="parsing_error")
