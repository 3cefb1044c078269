"""Turn what a caller passes (a string or role/content messages) into one validated conversation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .errors import InvalidConversationError

ROLES = ("system", "user", "assistant")
Conversation = list[dict[str, str]]


def normalize_conversation(messages: str | Sequence[Any], partial: bool = False) -> Conversation:
    """Validate and copy the input. A plain string is one user message.

    Accepts dicts with ``role``/``content`` keys or objects with such attributes. ``partial=True``
    checks each message but not the whole (an empty list, or only system messages, pass): for counting
    the tokens of part of a conversation, as ``trim_messages`` does.
    """
    if isinstance(messages, str):
        _check_unicode(messages, 0)
        conversation = [{"role": "user", "content": messages}]
        if not partial:
            _check_question(conversation)
        return conversation
    if messages is None or isinstance(messages, (bytes, Mapping)) or not isinstance(messages, Sequence):
        raise InvalidConversationError(
            f"messages must be a string or a list of {{'role', 'content'}} messages, got {type(messages).__name__}"
        )
    if len(messages) == 0 and not partial:
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
        _check_unicode(content, index)
        conversation.append({"role": role, "content": content})
    if not partial and all(message["role"] == "system" for message in conversation):
        raise InvalidConversationError("the conversation has only system messages: add a user message")
    if not partial:
        _check_question(conversation)
    return conversation


def _check_question(conversation: Conversation) -> None:
    """An empty or whitespace-only last user message is a mistake, not a question: members would
    answer it with a canned greeting. (Empty messages elsewhere in the history are kept.)"""
    users = [i for i, message in enumerate(conversation) if message["role"] == "user"]
    if users and not conversation[users[-1]]["content"].strip():
        raise InvalidConversationError(
            f"message {users[-1]} (the last user message) is empty or only whitespace, so there is nothing "
            "to answer: pass the question as its text"
        )


def _check_unicode(content: str, index: int) -> None:
    """Reject lone surrogates (e.g. "\\ud800" from badly decoded JSON): they are not text, tokenizers
    cannot encode them, and replacing them silently would change what the user sent."""
    try:
        content.encode("utf-8")
    except UnicodeEncodeError as error:
        raise InvalidConversationError(
            f"message {index} content has a lone surrogate {content[error.start]!r} at character {error.start}, "
            "which is not valid Unicode text; decode the input properly, or replace such characters with "
            "text.encode('utf-16', 'surrogatepass').decode('utf-16', 'replace')"
        ) from None


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
