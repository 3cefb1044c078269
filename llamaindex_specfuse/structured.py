"""Structured prediction helpers: a LlamaIndex prompt -> chat messages, and partial objects while a
constrained reply streams (the core validates the whole reply; partials are best effort)."""

from typing import Any, Dict, List, Optional

from llama_index.core.base.llms.types import ChatMessage
from pydantic import ValidationError
from pydantic_core import from_json


def structured_messages(llm: Any, prompt: Any, prompt_args: Dict[str, Any]) -> List[ChatMessage]:
    """The prompt's messages (a ``PromptTemplate`` or ``ChatPromptTemplate``) with its arguments."""
    return prompt.format_messages(llm=llm, **prompt_args)


def parse_partial(output_cls: Any, text: str) -> Optional[Any]:
    """``output_cls`` from a JSON prefix, where what has arrived already validates; else None."""
    if not text:
        return None
    try:
        return output_cls.model_validate(from_json(text, allow_partial=True))
    except (ValueError, ValidationError):
        return None
