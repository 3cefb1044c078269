"""Turn what a caller passes (a string or role/content messages) into one validated conversation."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import InvalidConversationError

ROLES = ("system", "user", "assistant", "tool")
Conversation = list[dict[str, Any]]


class ToolConversation(list):
    """A conversation that offers tools: each member renders ``tools`` into its prompt (its chat
    template's ``tools=`` where it has one, else the documented plain fallback)."""

    def __init__(self, messages: Sequence[dict[str, Any]] = (), tools: Sequence[Any] = ()) -> None:
        super().__init__(messages)
        self.tools = tuple(tools)


def with_tools(conversation: Conversation, tools: Sequence[Any]) -> Conversation:
    """``conversation`` offering ``tools`` (the core's ``ToolSpec`` objects)."""
    return ToolConversation(conversation, tools) if tools else conversation


def same_kind(conversation: Conversation, messages: Sequence[dict[str, Any]]) -> Conversation:
    """``messages`` keeping what ``conversation`` offers besides them (its tools)."""
    return with_tools(list(messages), getattr(conversation, "tools", ()))


def uses_tools(conversation: Conversation) -> bool:
    """Whether rendering needs the tool-aware path: tools offered, tool calls or tool results."""
    return bool(getattr(conversation, "tools", ())) or any(m["role"] == "tool" or m.get("tool_calls") for m in conversation)


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
        calls = _get(message, "tool_calls") if role == "assistant" else None
        if content is None and (calls or role == "tool"):
            content = ""  # an assistant turn that only calls tools has no text
        if not isinstance(content, str):
            raise InvalidConversationError(
                f"message {index} content must be a string, got {type(content).__name__}"
            )
        _check_unicode(content, index)
        item: dict[str, Any] = {"role": role, "content": content}
        if calls:
            item["tool_calls"] = _tool_calls(calls, index)
        if role == "tool":
            item["tool_call_id"] = str(_get(message, "tool_call_id") or "")
            item["name"] = str(_get(message, "name") or "")
        conversation.append(item)
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
        if "role" not in message or ("content" not in message and not message.get("tool_calls")):
            raise InvalidConversationError(f"message {index} needs 'role' and 'content' keys")
        return message["role"], message.get("content")
    if hasattr(message, "role") and hasattr(message, "content"):
        return message.role, message.content
    raise InvalidConversationError(f"message {index} is a {type(message).__name__}, not a role/content message")


def _get(message: Any, key: str) -> Any:
    return message.get(key) if isinstance(message, Mapping) else getattr(message, key, None)


def _tool_calls(calls: Any, index: int) -> list[dict[str, Any]]:
    """An assistant's tool calls as ``{"id", "name", "arguments": dict}`` (from OpenAI dicts,
    ``{"name", "arguments"}`` dicts or the core's ``ToolCall``)."""
    out = []
    for call in calls:
        data = call.model_dump() if hasattr(call, "model_dump") else dict(call) if isinstance(call, Mapping) else None
        if data is None:
            raise InvalidConversationError(f"message {index}: a tool call must be a dict or a ToolCall")
        function = data["function"] if isinstance(data.get("function"), Mapping) else data
        name, arguments = function.get("name"), function.get("arguments", {})
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments or "{}")
            except json.JSONDecodeError:
                raise InvalidConversationError(f"message {index}: tool call arguments are not JSON") from None
        if not isinstance(name, str) or not isinstance(arguments, dict):
            raise InvalidConversationError(f"message {index}: a tool call needs a name and an arguments object")
        out.append({"id": str(data.get("id") or ""), "name": name, "arguments": arguments})
    return out


def last_user_text(conversation: Conversation) -> str:
    """All user and system text, for the repetition penalty's notion of 'the prompt'."""
    return "\n".join(m["content"] for m in conversation if m["role"] != "assistant")


def without_question(conversation: Conversation) -> Conversation:
    """The same conversation with the last user message's text emptied: the context a verifier scores
    candidates in for the context-free contrast (``contrast_weight``). History, system text and tools stay."""
    users = [i for i, message in enumerate(conversation) if message["role"] == "user"]
    messages = [dict(message) for message in conversation]
    if users:
        messages[users[-1]]["content"] = ""
    return same_kind(conversation, messages)
