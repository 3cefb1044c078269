"""LangChain messages -> the core's conversation: text, assistant tool calls and tool results."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ChatMessage, FunctionMessage, HumanMessage, SystemMessage, ToolMessage

from specfuse_core.integration import assistant_message, tool_message, tool_message_error

_ROLES = {"system": "system", "user": "user", "human": "user", "assistant": "assistant", "ai": "assistant"}


def to_conversation(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """LangChain messages -> specfuse conversation. ``ToolMessage`` becomes a tool result and an
    ``AIMessage``'s ``tool_calls`` travel with it; legacy function messages and multimodal input are
    refused (see :func:`specfuse_core.integration.tool_message_error`)."""
    conversation = []
    for index, message in enumerate(messages):
        if isinstance(message, FunctionMessage) or (isinstance(message, ChatMessage) and message.role.lower() == "function"):
            raise tool_message_error("ChatSpecFuse", index, "function")
        _check_text_only(message)
        if isinstance(message, ToolMessage):
            conversation.append(tool_message(message.text, message.tool_call_id, message.name))
            continue
        if isinstance(message, AIMessage):
            calls = [{"id": c.get("id"), "name": c["name"], "arguments": c.get("args") or {}} for c in message.tool_calls]
            conversation.append(assistant_message(message.text, calls))
            continue
        if isinstance(message, SystemMessage):
            role = "system"
        elif isinstance(message, HumanMessage):
            role = "user"
        elif isinstance(message, ChatMessage) and message.role.lower() in _ROLES:
            role = _ROLES[message.role.lower()]
        elif isinstance(message, ChatMessage) and message.role.lower() == "tool":
            role = "tool"
        else:
            raise ValueError(
                f"ChatSpecFuse cannot take a {type(message).__name__} (role {getattr(message, 'role', message.type)!r}); "
                "pass system, human, AI and tool messages"
            )
        conversation.append({"role": role, "content": message.text})
    return conversation


def _check_text_only(message: BaseMessage) -> None:
    """Text blocks pass; so do an AI message's ``tool_call`` blocks and Anthropic-style ``tool_use``
    blocks that restate one of its ``tool_calls`` (the calls travel from ``tool_calls``)."""
    if not isinstance(message.content, list):
        return
    call_ids = {c.get("id") for c in message.tool_calls} if isinstance(message, AIMessage) else set()
    for block in message.content:
        kind = block.get("type") if isinstance(block, dict) else "text"
        if kind in ("text", "tool_call") or (kind == "tool_use" and block.get("id") in call_ids):
            continue
        raise ValueError(f"ChatSpecFuse accepts text only; got a {kind!r} content block")
