"""Turn what a caller passes (a string or role/content messages) into one validated conversation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .errors import InvalidConversationError

ROLES = ("system", "user", "assistant")
Conversation = list[dict[str, str]]


def normalize_conversation(messages: str | Sequence[Any]) -> Conversation:
    """Validate and copy the input. A plain string is one user message.

    Accepts dicts with ``role``/``content`` keys or objects with such attributes.
    """
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    if messages is None or isinstance(messages, (bytes, Mapping)) or not isinstance(messages, Sequence):
        raise InvalidConversationError(
            f"messages must be a string or a list of {{'role', 'content'}} messages, got {type(messages).__name__}"
        )
    if len(messages) == 0:
        raise InvalidConversationError("the conversation is empty: pass at least one user message")
    conversation: Conversation = []
    for index, message in enumerate(messages):
        role, content = _role_and_content(message, index)
        if role not in ROLES:
            raise InvalidConversationError(f"message {index} has unknown role {role!r}; use one of {', '.join(ROLES)}")
        if not isinstance(content, str):
            raise InvalidConversationError(
                f"message {index} content must be a string, got {type(content).__name__}"
            )
        conversation.append({"role": role, "content": content})
    if all(message["role"] == "system" for message in conversation):
        raise InvalidConversationError("the conversation has only system messages: add a user message")
    return conversation


def _role_and_content(message: Any, index: int) -> tuple[Any, Any]:
    if isinstance(message, Mapping):
        if "role" not in message or "content" not in message:
            raise InvalidConversationError(f"message {index} needs 'role' and 'content' keys")
        return message["role"], message["content"]
    if hasattr(message, "role") and hasattr(message, "content"):
        return message.role, message.content
    raise InvalidConversationError(f"message {index} is a {type(message).__name__}, not a role/content message")


def last_user_text(conversation: Conversation) -> str:
    """All user and system text, for the repetition penalty's notion of 'the prompt'."""
    return "\n".join(m["content"] for m in conversation if m["role"] != "assistant")
