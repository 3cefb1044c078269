"""LlamaIndex ``ChatMessage`` -> the core's ``{"role", "content"}`` messages."""

import json
from typing import Any, Dict, List, Optional, Sequence

from llama_index.core.base.llms.types import (
    CachePoint,
    ChatMessage,
    MessageRole,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
)
from specfuse_core import InvalidConversationError
from specfuse_core.integration import assistant_message, tool_message, tool_message_error

CoreMessage = Dict[str, Any]

#: LlamaIndex roles -> the three roles the core (and every member's chat template) knows.
ROLE_MAP: Dict[str, str] = {
    MessageRole.SYSTEM.value: "system",
    MessageRole.DEVELOPER.value: "system",
    MessageRole.USER.value: "user",
    MessageRole.ASSISTANT.value: "assistant",
    MessageRole.MODEL.value: "assistant",
    MessageRole.CHATBOT.value: "assistant",
}
# Tool results (role "tool") become the core's tool messages; legacy "function" results are refused.

# Blocks that carry no prompt text for a local text model and are skipped (tool calls travel apart).
_SKIPPED_BLOCKS = (ThinkingBlock, CachePoint, ToolCallBlock)


def message_text(message: ChatMessage, index: int = 0) -> str:
    """The text of one message (text blocks joined like ``ChatMessage.content``); a clear error for
    images, audio, documents and tool calls, which the ensemble cannot read."""
    if not message.blocks and _role(message) != MessageRole.TOOL.value:  # ChatMessage(content=None): no text at all
        raise InvalidConversationError(
            f"message {index} has no content (None): SpecFuseLLM is text-only, pass the message's text"
        )
    parts: List[str] = []
    for block in message.blocks:
        if isinstance(block, TextBlock):
            parts.append(block.text)
        elif isinstance(block, _SKIPPED_BLOCKS):
            continue
        else:
            kind = getattr(block, "block_type", type(block).__name__)
            raise InvalidConversationError(
                f"message {index} has a {kind!r} block: SpecFuseLLM is text-only, pass text content"
            )
    return "\n".join(parts)


def with_system_prompt(messages: Sequence[ChatMessage], system_prompt: Optional[str]) -> List[ChatMessage]:
    """Prepend ``system_prompt`` as a system message, unless the conversation already carries it
    (``LLM.predict``/``stream`` add it themselves before calling ``chat``)."""
    messages = list(messages)
    if not system_prompt:
        return messages
    for message in messages:
        if ROLE_MAP.get(_role(message)) == "system" and (message.content or "").startswith(system_prompt):
            return messages
    return [ChatMessage(role=MessageRole.SYSTEM, content=system_prompt), *messages]


def to_core_messages(messages: Sequence[ChatMessage]) -> List[CoreMessage]:
    """Map roles (see :data:`ROLE_MAP`), flatten text blocks, and merge the leading system
    messages into one (several chat templates accept a single leading system message only).

    Raises :class:`specfuse_core.errors.InvalidConversationError` (a ``ValueError``) for unknown
    roles, tool or function results, non-text content, or a conversation the core rejects (empty, only system messages).
    """
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise InvalidConversationError(
            f"messages must be a sequence of ChatMessage, got {type(messages).__name__}"
        )
    converted: List[CoreMessage] = []
    for index, message in enumerate(messages):
        if not isinstance(message, ChatMessage):
            raise InvalidConversationError(f"message {index} is a {type(message).__name__}, not a ChatMessage")
        if _role(message) == MessageRole.FUNCTION.value:
            raise tool_message_error("SpecFuseLLM", index, "function")
        if _role(message) == MessageRole.TOOL.value:
            extra = message.additional_kwargs
            converted.append(tool_message(message_text(message, index), extra.get("tool_call_id"), extra.get("name")))
            continue
        role = ROLE_MAP.get(_role(message))
        if role is None:
            raise InvalidConversationError(
                f"message {index} has role {_role(message)!r}, which SpecFuseLLM cannot map; "
                f"use one of {', '.join(sorted(ROLE_MAP))}"
            )
        calls = tool_calls_of(message) if role == "assistant" else []
        if calls:
            converted.append(assistant_message(message_text(message, index) if message.blocks else "", calls))
        else:
            converted.append({"role": role, "content": message_text(message, index)})

    leading = 0
    while leading < len(converted) and converted[leading]["role"] == "system":
        leading += 1
    if leading > 1:
        merged = "\n\n".join(m["content"] for m in converted[:leading] if m["content"])
        converted = [{"role": "system", "content": merged}, *converted[leading:]]
    return converted


def tool_calls_of(message: ChatMessage) -> List[Dict[str, Any]]:
    """An assistant message's tool calls (``ToolCallBlock`` blocks) as ``{"id", "name", "arguments"}``."""
    calls = []
    for block in message.blocks:
        if isinstance(block, ToolCallBlock):
            arguments = block.tool_kwargs
            if isinstance(arguments, str):
                arguments = json.loads(arguments or "{}")
            calls.append({"id": block.tool_call_id or "", "name": block.tool_name, "arguments": arguments})
    return calls


def _role(message: ChatMessage) -> str:
    role = message.role
    return role.value if isinstance(role, MessageRole) else str(role)
