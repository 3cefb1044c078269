"""How a member turns a conversation into its prompt text: its own chat template, or a plain fallback."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from .messages import Conversation


class PlainPromptFormat(BaseModel):
    """Fallback for members without a chat template (base models).

    Renders ``{bos}{System: ...\\n\\n}User: ...\\n\\nAssistant:`` and ends the member's turn when it starts
    a new ``\\nUser:`` line. ``bos`` defaults to the tokenizer's BOS token (base models such as Gemma
    emit garbage without it).
    """

    model_config = ConfigDict(frozen=True)

    bos: str | None = None
    system_prefix: str = "System: "
    user_prefix: str = "User: "
    assistant_prefix: str = "Assistant: "
    separator: str = "\n\n"
    generation_prefix: str = "Assistant:"
    stop_strings: tuple[str, ...] = ("\nUser:", "\nSystem:")

    def render(self, conversation: Conversation, bos_token: str | None) -> str:
        prefixes = {"system": self.system_prefix, "user": self.user_prefix, "assistant": self.assistant_prefix}
        bos = self.bos if self.bos is not None else (bos_token or "")
        body = "".join(prefixes[m["role"]] + m["content"] + self.separator for m in conversation)
        return bos + body + self.generation_prefix


def render_prompt(tokenizer, conversation: Conversation, plain: PlainPromptFormat | None) -> str:
    """The member's prompt text, ending where the assistant's answer starts."""
    if plain is None and getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
    return (plain or PlainPromptFormat()).render(conversation, getattr(tokenizer, "bos_token", None))
