"""Constrained output for the ensemble: response formats, grammar matchers per member, tool calling.

Phase 1 of issue 12 (see docs/structured_output.md): the pieces drafting will use, independent of
where members live. Needs the ``structured`` extra (llguidance, jsonschema).
"""

from .constraint import MemberConstraint
from .factory import GrammarCache, grammar_backend, shared_grammar_cache
from .formats import ResponseFormat, response_format_from
from .grammar import GrammarBackend, TokenMatcher, allowed_mask, mask_logits_
from .limits import SchemaLimits
from .tool_prompt import render_with_tools, template_supports_tools
from .tools import (
    ParsedToolResponse,
    ToolCall,
    ToolsConstraint,
    ToolSpec,
    parse_tool_calls,
    tool_mode_from,
    tool_specs_from,
    tools_response_format,
)
from .validation import validate_output

__all__ = [
    "GrammarBackend",
    "GrammarCache",
    "MemberConstraint",
    "ParsedToolResponse",
    "ResponseFormat",
    "SchemaLimits",
    "TokenMatcher",
    "ToolCall",
    "ToolSpec",
    "ToolsConstraint",
    "allowed_mask",
    "grammar_backend",
    "mask_logits_",
    "parse_tool_calls",
    "render_with_tools",
    "response_format_from",
    "shared_grammar_cache",
    "template_supports_tools",
    "tool_mode_from",
    "tool_specs_from",
    "tools_response_format",
    "validate_output",
]
