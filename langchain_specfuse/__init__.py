"""LangChain integration for specfuse: :class:`ChatSpecFuse`, a chat model over a SpecFuse ensemble."""

from langchain_specfuse.chat_models import SEGMENT_EVENT, ChatSpecFuse

__all__ = ["SEGMENT_EVENT", "ChatSpecFuse"]
