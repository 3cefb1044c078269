"""Fixtures of the LlamaIndex adapter tests.

Real-model fixtures are session-scoped: the tiny preset and the MiniLM embedder load once per
pytest session (the core also caches members process-wide).
"""

from __future__ import annotations

import os

import pytest
from llama_index.core.instrumentation import get_dispatcher

from llamaindex_helpers import DOCUMENTS, MAX_NEW_TOKENS, MiniLMEmbedding, RecordingHandler

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True)
def _torch_threads():
    """On small shared CPUs one intra-op thread is much faster than oversubscribing the cores
    (about 3x on the 2-core CI machines). Set for this folder's tests only, and restored after;
    SPECFUSE_TEST_TORCH_THREADS overrides."""
    import torch

    wanted = os.environ.get("SPECFUSE_TEST_TORCH_THREADS")
    threads = int(wanted) if wanted else (1 if (os.cpu_count() or 1) <= 4 else None)
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if threads:
            torch.set_num_threads(previous)


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
