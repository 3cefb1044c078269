"""LangChain messages -> the core's conversation. Text only; tool results and multimodal input are refused."""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.messages import AIMessage, BaseMessage, ChatMessage, FunctionMessage, HumanMessage, SystemMessage, ToolMessage

from specfuse_core.integration import tool_message_error

_ROLES = {"system": "system", "user": "user", "human": "user", "assistant": "assistant", "ai": "assistant"}


def to_conversation(messages: Sequence[BaseMessage]) -> list[dict[str, str]]:
    """LangChain messages -> specfuse conversation. Text only; tool results and multimodal input are
    refused (see :func:`specfuse_core.integration.tool_message_error`)."""
    conversation = []
    for index, message in enumerate(messages):
        if isinstance(message, (ToolMessage, FunctionMessage)) or (isinstance(message, ChatMessage) and message.role.lower() in ("tool", "function")):
            raise tool_message_error("ChatSpecFuse", index, getattr(message, "role", message.type))
        if isinstance(message, SystemMessage):
            role = "system"
        elif isinstance(message, HumanMessage):
            role = "user"
        elif isinstance(message, AIMessage):
            role = "assistant"
        elif isinstance(message, ChatMessage) and message.role.lower() in _ROLES:
            role = _ROLES[message.role.lower()]
        else:
            raise ValueError(
                f"ChatSpecFuse cannot take a {type(message).__name__} (role {getattr(message, 'role', message.type)!r}); "
                "pass system, human and AI messages"
            )
        if isinstance(message.content, list):
            for block in message.content:
                kind = block.get("type") if isinstance(block, dict) else "text"
                if kind != "text":
                    raise ValueError(f"ChatSpecFuse accepts text only; got a {kind!r} content block")
        conversation.append({"role": role, "content": message.text})
    return conversation
