"""Conversations with tools, rendered for one member: through its chat template's ``tools=`` support
where the template has it (Qwen2.5's), else through a plain fallback that any template, or the plain
prompt format, can render.

The fallback (documented in docs/structured_output.md) puts the tool signatures and the call format
into the system message, writes an assistant's tool calls as ``<tool_call>`` blocks in its text, and
turns ``tool`` results into user messages holding ``<tool_response>`` blocks, which is what Qwen2.5's
template itself renders, so every member sees the same conventions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import InvalidConversationError
from ..messages import _tool_calls as tool_calls_of
from ..prompt_format import PlainPromptFormat, render_prompt
from .tools import CALL_CLOSE, CALL_OPEN, ToolSpec

TOOL_ROLES = ("system", "user", "assistant", "tool")
_PROBE_NAME = "specfuse_probe_tool_7f3a"


def template_supports_tools(tokenizer: Any) -> bool:
    """Whether the tokenizer's chat template renders ``tools=`` (probed: a template that ignores the
    argument, as SmolLM2's does, does not show the tool in its output)."""
    if not getattr(tokenizer, "chat_template", None):
        return False
    probe = ToolSpec(name=_PROBE_NAME, description="probe").openai()
    try:
        text = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tools=[probe], tokenize=False, add_generation_prompt=True)
    except Exception:  # a template that fails on tools has no usable tools support
        return False
    return _PROBE_NAME in text


def tool_conversation(messages: Sequence[Any]) -> list[dict[str, Any]]:
    """Validate and normalise messages that may hold tool calls and results: assistant messages with
    ``tool_calls`` (OpenAI dicts, ``{"name", "arguments", "id"}`` dicts or ToolCall objects) and
    ``tool`` messages (``content``, ``tool_call_id``, optional ``name``)."""
    out: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        get = message.get if isinstance(message, Mapping) else (lambda key, default=None, m=message: getattr(m, key, default))
        role, content = get("role"), get("content") or ""
        if role not in TOOL_ROLES:
            raise InvalidConversationError(f"message {index} has unknown role {role!r}; use one of {', '.join(TOOL_ROLES)}")
        if not isinstance(content, str):
            raise InvalidConversationError(f"message {index} content must be a string, got {type(content).__name__}")
        item: dict[str, Any] = {"role": role, "content": content}
        if role == "assistant" and get("tool_calls"):
            item["tool_calls"] = tool_calls_of(get("tool_calls"), index)
        if role == "tool":
            item["tool_call_id"] = get("tool_call_id") or ""
            item["name"] = get("name") or ""
        out.append(item)
    return out


def render_with_tools(tokenizer: Any, messages: Sequence[Any], tools: Sequence[ToolSpec] = (),
                      plain: PlainPromptFormat | None = None) -> str:
    """The member's prompt text for a conversation with tools (and/or tool calls and results)."""
    conversation = tool_conversation(messages)
    if plain is None and template_supports_tools(tokenizer):
        return _native(tokenizer, conversation, tools)
    return render_prompt(tokenizer, fallback_conversation(conversation, tools), plain)


def _native(tokenizer: Any, conversation: list[dict[str, Any]], tools: Sequence[ToolSpec]) -> str:
    messages = []
    for m in conversation:
        if m.get("tool_calls"):
            calls = [{"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}} for c in m["tool_calls"]]
            messages.append({"role": "assistant", "content": m["content"], "tool_calls": calls})
        else:
            messages.append(dict(m))
    return tokenizer.apply_chat_template(messages, tools=[t.openai() for t in tools] or None, tokenize=False, add_generation_prompt=True)


def call_block(name: str, arguments: dict[str, Any]) -> str:
    """One call in the format the grammar allows (and Qwen2.5 writes)."""
    return f"{CALL_OPEN}\n{json.dumps({'name': name, 'arguments': arguments}, ensure_ascii=False)}\n{CALL_CLOSE}"


def tools_system_text(tools: Sequence[ToolSpec]) -> str:
    lines = "\n".join(json.dumps(t.openai(), ensure_ascii=False) for t in tools)
    return (
        "# Tools\n\nYou can call the functions below to answer the user. Their signatures, one JSON object "
        f"per line:\n<tools>\n{lines}\n</tools>\n\nTo call a function, answer with one block per call and "
        f'nothing else:\n{CALL_OPEN}\n{{"name": <function name>, "arguments": <arguments object>}}\n{CALL_CLOSE}\n'
        "Otherwise, answer in plain text."
    )


def fallback_conversation(conversation: list[dict[str, Any]], tools: Sequence[ToolSpec]) -> list[dict[str, str]]:
    """The conversation with tools written as text: system/user/assistant messages only."""
    out: list[dict[str, str]] = []
    for m in conversation:
        if m["role"] == "tool":
            block = f"<tool_response>\n{m['content']}\n</tool_response>"
            if out and out[-1].get("_tool"):  # consecutive results share one user message
                out[-1]["content"] += "\n" + block
            else:
                out.append({"role": "user", "content": block, "_tool": "1"})
            continue
        content = m["content"]
        if m.get("tool_calls"):
            blocks = "\n".join(call_block(c["name"], c["arguments"]) for c in m["tool_calls"])
            content = f"{content}\n{blocks}" if content else blocks
        out.append({"role": m["role"], "content": content})
    if tools:
        text = tools_system_text(tools)
        if out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": f"{out[0]['content']}\n\n{text}"}
        else:
            out.insert(0, {"role": "system", "content": text})
    return [{"role": m["role"], "content": m["content"]} for m in out]
