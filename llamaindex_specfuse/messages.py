"""LlamaIndex ``ChatMessage`` -> the core's ``{"role", "content"}`` messages."""

from typing import Dict, List, Optional, Sequence

from llama_index.core.base.llms.types import (
    CachePoint,
    ChatMessage,
    MessageRole,
    TextBlock,
    ThinkingBlock,
)
from specfuse_core import InvalidConversationError
from specfuse_core.integration import TOOL_ROLES, tool_message_error

CoreMessage = Dict[str, str]

#: LlamaIndex roles -> the three roles the core (and every member's chat template) knows.
ROLE_MAP: Dict[str, str] = {
    MessageRole.SYSTEM.value: "system",
    MessageRole.DEVELOPER.value: "system",
    MessageRole.USER.value: "user",
    MessageRole.ASSISTANT.value: "assistant",
    MessageRole.MODEL.value: "assistant",
    MessageRole.CHATBOT.value: "assistant",
}
# Tool and function results are refused (the ensemble has no tool calling; see specfuse_core.integration).

# Blocks that carry no prompt text for a local text model and are skipped.
_SKIPPED_BLOCKS = (ThinkingBlock, CachePoint)


def message_text(message: ChatMessage, index: int = 0) -> str:
    """The text of one message (text blocks joined like ``ChatMessage.content``); a clear error for
    images, audio, documents and tool calls, which the ensemble cannot read."""
    if not message.blocks:  # ChatMessage(content=None): no text at all, not an empty string
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
        if _role(message) in TOOL_ROLES:
            raise tool_message_error("SpecFuseLLM", index, _role(message))
        role = ROLE_MAP.get(_role(message))
        if role is None:
            raise InvalidConversationError(
                f"message {index} has role {_role(message)!r}, which SpecFuseLLM cannot map; "
                f"use one of {', '.join(sorted(ROLE_MAP))}"
            )
        converted.append({"role": role, "content": message_text(message, index)})

    leading = 0
    while leading < len(converted) and converted[leading]["role"] == "system":
        leading += 1
    if leading > 1:
        merged = "\n\n".join(m["content"] for m in converted[:leading] if m["content"])
        converted = [{"role": "system", "content": merged}, *converted[leading:]]
    return converted


def _role(message: ChatMessage) -> str:
    role = message.role
    return role.value if isinstance(role, MessageRole) else str(role)
