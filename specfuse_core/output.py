"""What a request asks its output to be (a response format, or tools), normalised once per request.

:class:`OutputSpec` is the core's one view of ``response_format``, ``tools`` and ``tool_choice``: the
grammar every drafting member follows (``fmt``), the tools shown in each member's prompt, and the
last check (:meth:`OutputSpec.finish`) that turns the final text into a validated value or parsed tool
calls, or fails the request with a named error. The grammar pieces live in
:mod:`specfuse_core.constrained` (which needs torch and llguidance); they are imported only when a
request asks for them, so plain requests and remote-only users never load them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import UnsupportedSchemaError
from .results import ToolCall

if TYPE_CHECKING:
    from .constrained import ResponseFormat, SchemaLimits, ToolSpec


@dataclass(frozen=True)
class FinalOutput:
    """The checked result of a constrained request."""

    parsed: Any = None
    tool_calls: list[ToolCall] = field(default_factory=list)


@dataclass(frozen=True)
class OutputSpec:
    """``fmt``: the grammar members draft under (None: free text, e.g. ``tool_choice="none"``);
    ``validate``: the format the final text must validate against (response formats only);
    ``tools``/``tool_choice``: the tools shown in the prompt and how the answer may call them."""

    fmt: "ResponseFormat | None" = None
    validate: "ResponseFormat | None" = None
    tools: "tuple[ToolSpec, ...]" = ()
    tool_choice: Any = "auto"

    @classmethod
    def build(cls, response_format: Any = None, tools: Any = None, tool_choice: Any = None,
              limits: "SchemaLimits | None" = None, parallel_tool_calls: bool | None = None) -> "OutputSpec | None":
        """None for a plain request. Bad or hostile formats raise ``UnsupportedSchemaError`` here, before
        any model work. ``parallel_tool_calls``: several calls per answer; off by default (one call),
        since small members otherwise keep calling until the length limit cuts a call in half."""
        if response_format is None and not tools:
            if tool_choice not in (None, "auto", "none"):
                raise UnsupportedSchemaError(f"tool_choice={tool_choice!r} needs tools")
            return None
        if response_format is not None and tools:
            raise UnsupportedSchemaError(
                "pass either response_format or tools, not both (for structured output through a tool, "
                "pass one tool and tool_choice=its name)"
            )
        from .constrained import response_format_from, tool_specs_from, tools_response_format

        if response_format is not None:
            fmt = response_format_from(response_format, limits)
            return cls(fmt=fmt, validate=fmt)
        choice = "auto" if tool_choice is None else tool_choice
        fmt = tools_response_format(tools, choice, limits, parallel=bool(parallel_tool_calls))
        return cls(fmt=fmt, tools=tuple(tool_specs_from(tools, limits)), tool_choice=choice)

    @property
    def has_tools(self) -> bool:
        return bool(self.tools)

    def finish(self, text: str) -> FinalOutput:
        """The final text, checked: raises ``StructuredOutputError`` (``ToolCallParseError`` for
        tools) when it does not parse or validate."""
        from .constrained import parse_tool_calls, validate_output

        if self.has_tools:
            parsed = parse_tool_calls(text, [t.openai() for t in self.tools], self.tool_choice)
            return FinalOutput(tool_calls=list(parsed.tool_calls))
        if self.validate is not None and self.validate.kind != "lark":
            return FinalOutput(parsed=validate_output(text, self.validate))
        return FinalOutput(parsed=text)
