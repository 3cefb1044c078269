"""LlamaIndex integration of specfuse: :class:`SpecFuseLLM`, a segment-level LLM ensemble as a
LlamaIndex ``LLM``, and :class:`SpecFuseSegmentEvent`, the instrumentation event it sends per
accepted segment."""

from .base import SpecFuseLLM
from .events import SpecFuseSegmentEvent
from .messages import ROLE_MAP, to_core_messages

__all__ = ["ROLE_MAP", "SpecFuseLLM", "SpecFuseSegmentEvent", "to_core_messages"]
