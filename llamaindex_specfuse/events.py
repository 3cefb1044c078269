"""The custom instrumentation event :class:`SpecFuseLLM` sends once per accepted segment."""

from typing import Any, Dict, List, Optional

from llama_index.core.instrumentation.events.base import BaseEvent
from pydantic import Field


class SpecFuseSegmentEvent(BaseEvent):
    """One accepted segment of a SpecFuse ensemble, with its provenance.

    Sent through ``llama_index.core.instrumentation.get_dispatcher("llamaindex_specfuse.base")``,
    which propagates to the root dispatcher, so any handler added with
    ``get_dispatcher().add_event_handler(...)`` receives it. One event per accepted segment, for
    every call (streaming or not, sync or async); in a streaming call it is sent just before the
    matching ``LLMChatInProgressEvent`` / ``LLMCompletionInProgressEvent``.
    """

    model_name: str = Field(description="SpecFuseLLM.metadata.model_name of the ensemble that produced it")
    text: str = Field(description="text released to the caller with this segment (the streamed delta)")
    segment: str = Field(description="the accepted segment as proposed (before stop-string holdback/cutting)")
    round: int = Field(description="1-based round number inside the request")
    member: str = Field(description="the member credited with the winning segment")
    proposers: List[str] = Field(default_factory=list, description="every member that proposed the winning text")
    scores: Dict[str, float] = Field(default_factory=dict, description="member -> combined score of its candidate")
    active_members: List[str] = Field(default_factory=list, description="members that drafted in this round")
    finish_reason: Optional[str] = Field(default=None, description="set on the last segment: stop, length, stop_sequence or timeout")
    faults: List[Dict[str, Any]] = Field(default_factory=list, description="members that failed in this round and were taken out")

    @classmethod
    def class_name(cls) -> str:
        return "SpecFuseSegmentEvent"

    @classmethod
    def from_step(cls, step: Any, model_name: str, span_id: Optional[str]) -> "SpecFuseSegmentEvent":
        """Build from a :class:`specfuse_core.integration.SegmentStep` (its segment record)."""
        return cls(model_name=model_name, span_id=span_id, **step.record)
