"""Tool calling as a constraint: OpenAI-style function schemas and ``tool_choice`` become the grammar
"a plain text answer, or one or more valid tool calls" (only calls for ``required`` or a name), and a
final text is parsed back into :class:`ToolCall` objects.

The call format is Qwen2.5's, which one preset member was trained on and the others can copy from a
system prompt (:mod:`.tool_prompt`)::

    <tool_call>
    {"name": "get_weather", "arguments": {"city": "Paris"}}
    </tool_call>

Several calls follow each other, one block each, separated by a newline. A text answer may not begin
with ``<tool_call>``; an answer is either text or calls, not both.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..errors import ToolCallParseError, UnsupportedSchemaError
from ..results import ToolCall  # defined with the results it travels in (torch-free)
from .formats import JSON_LAYOUT, ResponseFormat
from .limits import SchemaLimits, check_schema, check_source_size

CALL_OPEN = "<tool_call>"
CALL_CLOSE = "</tool_call>"
_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
ToolMode = Literal["auto", "required", "none"]


class ToolSpec(BaseModel):
    """One callable tool: a name, what it does, and the JSON Schema of its arguments object."""

    model_config = ConfigDict(frozen=True)

    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})

    def openai(self) -> dict[str, Any]:
        """The OpenAI function-tool dict (what chat templates' ``tools=`` expect)."""
        return {"type": "function", "function": {"name": self.name, "description": self.description, "parameters": self.parameters}}


class ParsedToolResponse(BaseModel):
    """A final text split into its text answer (``content``) and its tool calls (one or the other)."""

    content: str
    tool_calls: list[ToolCall]


# ---------------------------------------------------------------------- inputs
def tool_specs_from(tools: Sequence[Any], limits: SchemaLimits | None = None) -> list[ToolSpec]:
    """Normalise tools given as OpenAI dicts (``{"type": "function", "function": {...}}`` or the bare
    function dict), pydantic model classes (name = class name, arguments = its fields) or ToolSpecs."""
    limits = limits or SchemaLimits()
    specs = [_tool_spec(tool) for tool in tools]
    if not specs:
        raise UnsupportedSchemaError("tools is empty: pass at least one tool, or no tools")
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise UnsupportedSchemaError(f"tool names must be unique: {names}")
    for spec in specs:
        if not _NAME.match(spec.name):
            raise UnsupportedSchemaError(f"tool name {spec.name!r} must be 1-64 letters, digits, '_', '.' or '-'")
        check_schema(spec.parameters, limits)
        if spec.parameters.get("type", "object") != "object":
            raise UnsupportedSchemaError(f"tool {spec.name!r}: parameters must describe an object")
    return specs


def _tool_spec(tool: Any) -> ToolSpec:
    if isinstance(tool, ToolSpec):
        return tool
    if isinstance(tool, type) and issubclass(tool, BaseModel):
        schema = tool.model_json_schema()
        schema.pop("title", None)
        return ToolSpec(name=tool.__name__, description=(tool.__doc__ or "").strip(), parameters=schema)
    if isinstance(tool, dict):
        function = tool.get("function") if tool.get("type") == "function" else tool
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            parameters = function.get("parameters") or {"type": "object", "properties": {}}
            return ToolSpec(name=function["name"], description=function.get("description") or "", parameters=parameters)
    raise UnsupportedSchemaError(f"cannot read a tool from {type(tool).__name__}: pass OpenAI-style function dicts or pydantic model classes")


def tool_mode_from(tool_choice: Any, specs: Sequence[ToolSpec]) -> tuple[ToolMode, str | None]:
    """``auto`` (or None), ``none``, ``required`` (LangChain also says ``any`` or True), a tool name,
    or ``{"type": "function", "function": {"name": ...}}`` -> (mode, the one tool's name or None)."""
    if tool_choice is None or tool_choice == "auto":
        return "auto", None
    if tool_choice == "none" or tool_choice is False:
        return "none", None
    if tool_choice in ("required", "any") or tool_choice is True:
        return "required", None
    name = tool_choice
    if isinstance(tool_choice, dict):
        name = (tool_choice.get("function") or {}).get("name") or tool_choice.get("name")
    if isinstance(name, str) and name in {s.name for s in specs}:
        return "required", name
    raise UnsupportedSchemaError(f"tool_choice {tool_choice!r} names no tool of {[s.name for s in specs]}")


# ---------------------------------------------------------------------- the constraint
@dataclass(frozen=True)
class ToolsConstraint:
    """The tools a request may call and how (``mode``, ``only`` = the one tool ``tool_choice`` names)."""

    tools: tuple[ToolSpec, ...]
    mode: ToolMode = "auto"
    only: str | None = None
    parallel: bool = True  # several calls in one answer (False: exactly one; small models otherwise loop on calls)

    @property
    def source(self) -> str:
        return json.dumps({"tools": [t.model_dump() for t in self.tools], "mode": self.mode, "only": self.only, "parallel": self.parallel})

    @classmethod
    def from_source(cls, source: str) -> "ToolsConstraint":
        data = json.loads(source)
        return cls(tuple(ToolSpec(**t) for t in data["tools"]), data["mode"], data["only"], data.get("parallel", True))

    def callable_tools(self) -> list[ToolSpec]:
        return [t for t in self.tools if self.only in (None, t.name)]

    def call_schema(self) -> dict[str, Any]:
        """JSON Schema of one call object: ``{"name": <a tool>, "arguments": <its parameters>}``.
        Each tool's ``$defs`` move to the root, renamed per tool, so their ``$ref`` keep resolving."""
        defs: dict[str, Any] = {}
        options = []
        for tool in self.callable_tools():
            parameters = closed_objects(_prefix_refs(tool.parameters, f"{tool.name}__"))
            for key in ("$defs", "definitions"):
                for def_name, def_schema in (parameters.pop(key, None) or {}).items():
                    defs[f"{tool.name}__{def_name}"] = def_schema
            options.append({
                "type": "object",
                "properties": {"name": {"const": tool.name}, "arguments": parameters},
                "required": ["name", "arguments"],
                "additionalProperties": False,
            })
        schema: dict[str, Any] = options[0] if len(options) == 1 else {"anyOf": options}
        if defs:
            schema = {**schema, "$defs": defs}
        return {**schema, "x-guidance": dict(JSON_LAYOUT)}

    def lark(self, added_as_special: dict[str, int] | None = None) -> str:
        """The llguidance Lark grammar. Where the tokenizer has ``<tool_call>`` as one added token the
        engine treats as special (Qwen2.5), that token is allowed as well as the spelled-out text."""
        special = added_as_special or {}

        def marker(text: str) -> str:
            spelled = json.dumps(text)
            return f"({spelled} | <[{special[text]}]>)" if text in special else spelled

        rules = [
            f"call: {marker(CALL_OPEN)} \"\\n\"? %json {json.dumps(self.call_schema())} \"\\n\"? {marker(CALL_CLOSE)}",
            'calls: call ("\\n" call)*' if self.parallel else "calls: call",
        ]
        if self.mode == "auto":
            rules.insert(0, "start: TEXT | calls")
            rules.append(r"TEXT: /(?s:.+)/ & ~/(?s:[ \t\n]*<tool_call>.*)/")
        else:
            rules.insert(0, "start: calls")
        return "\n".join(rules) + "\n"

    def response_format(self) -> ResponseFormat:
        return ResponseFormat("tools", self.source, name="tools")


def tools_response_format(tools: Sequence[Any], tool_choice: Any = "auto", limits: SchemaLimits | None = None,
                          parallel: bool = True) -> ResponseFormat | None:
    """The constraint for a request with ``tools``; None for ``tool_choice="none"`` (plain text)."""
    limits = limits or SchemaLimits()
    specs = tool_specs_from(tools, limits)
    mode, only = tool_mode_from(tool_choice, specs)
    if mode == "none":
        return None
    fmt = ToolsConstraint(tuple(specs), mode, only, parallel).response_format()
    check_source_size(fmt.source, limits, "the tool definitions")
    return fmt


def closed_objects(schema: Any) -> Any:
    """``schema`` (a fresh copy, changed in place) with every object that lists ``properties`` and says
    nothing about others closed (``additionalProperties: false``), as OpenAI's strict function calling
    does. JSON Schema leaves such objects open, and small models then copy the schema into the call
    (``{"input": 3, "type": "integer"}``); a tool's own ``additionalProperties`` is kept."""
    if not isinstance(schema, dict):
        return schema
    if isinstance(schema.get("properties"), dict) and "additionalProperties" not in schema and "patternProperties" not in schema:
        schema["additionalProperties"] = False
    for key in ("properties", "$defs", "definitions"):
        for sub in (schema.get(key) or {}).values():
            closed_objects(sub)
    for key in ("items", "prefixItems", "anyOf", "oneOf", "allOf"):
        value = schema.get(key)
        for sub in value if isinstance(value, list) else [value]:
            closed_objects(sub)
    for key in ("additionalProperties", "not", "if", "then", "else"):
        closed_objects(schema.get(key))
    return schema


def _prefix_refs(node: Any, prefix: str) -> Any:
    """A deep copy with local ``$defs``/``definitions`` references renamed ``prefix + name``."""
    if isinstance(node, dict):
        out = {k: _prefix_refs(v, prefix) for k, v in node.items()}
        ref = out.get("$ref")
        if isinstance(ref, str):
            for key in ("#/$defs/", "#/definitions/"):
                if ref.startswith(key):
                    out["$ref"] = "#/$defs/" + prefix + ref[len(key):]
        return out
    if isinstance(node, list):
        return [_prefix_refs(v, prefix) for v in node]
    return node


# ---------------------------------------------------------------------- parsing
_BLOCK = re.compile(re.escape(CALL_OPEN) + r"(.*?)" + re.escape(CALL_CLOSE), re.DOTALL)


def parse_tool_calls(text: str, tools: Sequence[Any], tool_choice: Any = "auto") -> ParsedToolResponse:
    """Split a final text into its text answer and its tool calls, checking every call: JSON, a
    known tool name (the one ``tool_choice`` names, if it names one), arguments valid against the
    tool's parameters. Raises :class:`ToolCallParseError`."""
    specs = {s.name: s for s in tool_specs_from(tools)}
    mode, only = tool_mode_from(tool_choice, list(specs.values()))
    calls = [_parse_call(body, specs, only, text) for body in _BLOCK.findall(text)]
    content = _BLOCK.sub("", text).strip()
    if CALL_OPEN in content or CALL_CLOSE in content:
        raise ToolCallParseError("a tool call block is not closed (or not opened)", text)
    if calls and content:
        raise ToolCallParseError("the answer mixes text and tool calls", text)
    if mode == "required" and not calls:
        raise ToolCallParseError("tool_choice requires a tool call, and the answer has none", text)
    if mode == "none" and calls:
        raise ToolCallParseError("tool_choice='none', and the answer calls a tool", text)
    return ParsedToolResponse(content="" if calls else text, tool_calls=calls)


def _parse_call(body: str, specs: dict[str, ToolSpec], only: str | None, text: str) -> ToolCall:
    try:
        call = json.loads(body)
    except json.JSONDecodeError as error:
        raise ToolCallParseError(f"a tool call is not JSON: {error.msg} at character {error.pos}", text) from None
    if not isinstance(call, dict) or not isinstance(call.get("name"), str):
        raise ToolCallParseError('a tool call must be {"name": ..., "arguments": {...}}', text)
    name = call["name"]
    if name not in specs or (only is not None and name != only):
        raise ToolCallParseError(f"the answer calls {name!r}, which is not a tool it may call", text)
    arguments = call.get("arguments", {})
    if isinstance(arguments, str):  # some models write the arguments as a JSON string, as OpenAI's API does
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            raise ToolCallParseError(f"the arguments of {name!r} are not JSON", text) from None
    if not isinstance(arguments, dict):
        raise ToolCallParseError(f"the arguments of {name!r} must be an object", text)
    _check_arguments(arguments, specs[name], text)
    return ToolCall(id=f"call_{uuid.uuid4().hex[:24]}", name=name, arguments=arguments)


def _check_arguments(arguments: dict, spec: ToolSpec, text: str) -> None:
    import jsonschema

    validator_class = jsonschema.validators.validator_for(spec.parameters, default=jsonschema.Draft202012Validator)
    error = jsonschema.exceptions.best_match(validator_class(spec.parameters).iter_errors(arguments))
    if error is not None:
        raise ToolCallParseError(f"the arguments of {spec.name!r} do not match its parameters: {error.message[:300]}", text)
