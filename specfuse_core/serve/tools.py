"""OpenAI's tool calling and response formats -> the core's output arguments and tool messages.

The core does the work (constrained drafting, parsing, docs/structured_output.md); this module only
checks OpenAI's shapes, so a mistake is a 400 naming its field before any model work, and converts
them. Legacy ``functions``/``function_call`` are refused with what to send instead."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..errors import StructuredOutputError, UnsupportedSchemaError
from ..integration import tool_message
from ..output import OutputSpec
from ..results import GenerationResult
from .errors import APIError, invalid, unsupported
from .schemas import ChatCompletionRequest

RESPONSE_FORMAT_TYPES = ("text", "json_object", "json_schema")
TOOL_CHOICE_WORDS = ("none", "auto", "required")


def output_arguments(request: ChatCompletionRequest) -> dict[str, Any]:
    """``response_format`` / ``tools`` / ``tool_choice`` / ``parallel_tool_calls`` for
    ``SpecFuse.astream``; empty for a plain request. Checked by building the core's output spec once."""
    if request.functions:
        raise unsupported("functions", "legacy function calling", "send them as tools: [{\"type\": \"function\", \"function\": {...}}]")
    if request.function_call not in (None, "none"):
        raise unsupported("function_call", "legacy function calling", "use tool_choice")
    output: dict[str, Any] = {}
    response_format = _response_format(request.response_format)
    if response_format is not None:
        output["response_format"] = response_format
    if request.tools:
        output["tools"] = _tools(request.tools)
    if request.tool_choice is not None:
        output["tool_choice"] = _tool_choice(request.tool_choice, bool(request.tools))
    if request.parallel_tool_calls is not None and request.tools:
        output["parallel_tool_calls"] = request.parallel_tool_calls
    if response_format is not None and request.tools:
        raise invalid("send either response_format or tools, not both (for a structured answer through a tool, send one tool and name it in tool_choice)", "response_format")
    if not output.get("tools") and output.get("tool_choice") == "none":
        del output["tool_choice"]  # "none" without tools asks for nothing
    try:
        OutputSpec.build(**output)
    except UnsupportedSchemaError as error:
        param = "response_format" if response_format is not None else "tool_choice" if "tool_choice" in str(error) else "tools"
        raise invalid(f"{param}: {error}", param) from None
    return output


def _response_format(spec: dict[str, Any] | None) -> dict[str, Any] | None:
    if spec is None:
        return None
    kind = spec.get("type")
    if kind not in RESPONSE_FORMAT_TYPES:
        raise invalid(f"response_format.type must be one of {', '.join(RESPONSE_FORMAT_TYPES)}, got {kind!r}", "response_format.type")
    if kind == "text":
        return None
    if kind == "json_schema":
        inner = spec.get("json_schema")
        if not isinstance(inner, dict):
            raise invalid("response_format.json_schema is required for type json_schema: {\"name\": ..., \"schema\": {...}}", "response_format.json_schema")
        if not isinstance(inner.get("name"), str) or not inner["name"]:
            raise invalid("response_format.json_schema.name is required", "response_format.json_schema.name")
        if "schema" in inner and not isinstance(inner["schema"], dict):
            raise invalid("response_format.json_schema.schema must be a JSON Schema object", "response_format.json_schema.schema")
    return spec


def _tools(tools: list[Any]) -> list[dict[str, Any]]:
    for index, tool in enumerate(tools):
        where = f"tools[{index}]"
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise invalid(f"{where}.type must be 'function' (the only tool type this server runs)", f"{where}.type")
        function = tool.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise invalid(f"{where}.function needs a name (and optionally description and parameters)", f"{where}.function")
        if "parameters" in function and not isinstance(function["parameters"], dict):
            raise invalid(f"{where}.function.parameters must be a JSON Schema object", f"{where}.function.parameters")
    return tools


def _tool_choice(choice: Any, has_tools: bool) -> Any:
    if isinstance(choice, str):
        if choice not in TOOL_CHOICE_WORDS:
            raise invalid(f"tool_choice must be one of {', '.join(TOOL_CHOICE_WORDS)} or a function, got {choice!r}", "tool_choice")
    elif isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name") if isinstance(choice.get("function"), dict) else None
        if choice.get("type") != "function" or not isinstance(name, str):
            raise invalid('tool_choice as an object must be {"type": "function", "function": {"name": ...}}', "tool_choice")
    else:
        raise invalid(f"tool_choice must be a string or an object, got {type(choice).__name__}", "tool_choice")
    if choice != "none" and not has_tools:
        raise invalid("tool_choice is only allowed when tools are specified", "tool_choice")
    return choice


# ---------------------------------------------------------------------- messages
def assistant_calls(calls: list[Any], where: str) -> list[dict[str, Any]]:
    """An assistant message's OpenAI ``tool_calls`` as the core's ``{"id", "name", "arguments": dict}``."""
    out = []
    for index, call in enumerate(calls):
        at = f"{where}.tool_calls[{index}]"
        if not isinstance(call, Mapping) or call.get("type", "function") != "function" or not isinstance(call.get("function"), Mapping):
            raise invalid(f"{at} must be {{\"id\", \"type\": \"function\", \"function\": {{\"name\", \"arguments\"}}}}", at)
        if not isinstance(call.get("id"), str) or not call["id"]:
            raise invalid(f"{at}.id is required (a tool message answers it by this id)", f"{at}.id")
        function = call["function"]
        if not isinstance(function.get("name"), str) or not function["name"]:
            raise invalid(f"{at}.function.name is required", f"{at}.function.name")
        arguments = function.get("arguments", "{}")
        if not isinstance(arguments, str):
            raise invalid(f"{at}.function.arguments must be a JSON string", f"{at}.function.arguments")
        try:
            parsed = json.loads(arguments or "{}")
        except json.JSONDecodeError as error:
            raise invalid(f"{at}.function.arguments is not JSON ({error})", f"{at}.function.arguments") from None
        if not isinstance(parsed, dict):
            raise invalid(f"{at}.function.arguments must be a JSON object", f"{at}.function.arguments")
        out.append({"id": call["id"], "name": function["name"], "arguments": parsed})
    return out


def tool_result(content: str, tool_call_id: str | None, earlier: list[dict[str, Any]], where: str) -> dict[str, Any]:
    """A ``tool`` message as the core's tool result; its tool's name comes from the call it answers."""
    if not tool_call_id:
        raise invalid(f"{where}.tool_call_id is required: the id of the assistant's tool call this answers", f"{where}.tool_call_id")
    calls = {c["id"]: c["name"] for m in earlier for c in m.get("tool_calls", ())}
    if tool_call_id not in calls:
        raise invalid(f"{where}.tool_call_id {tool_call_id!r} answers no tool call of an earlier assistant message", f"{where}.tool_call_id")
    return tool_message(content, tool_call_id, calls[tool_call_id])


# ---------------------------------------------------------------------- responses
def openai_tool_calls(result: GenerationResult) -> list[dict[str, Any]]:
    """The result's parsed calls in OpenAI's shape (arguments as a JSON string)."""
    return [
        {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": json.dumps(call.arguments, ensure_ascii=False)}}
        for call in result.tool_calls
    ]


def structured_output_failed(error: StructuredOutputError) -> APIError:
    """A constrained answer that does not parse (usually cut by max_tokens): no unchecked output."""
    return APIError(500, f"{error}; if the answer was cut short, raise max_tokens", code="structured_output_invalid")
