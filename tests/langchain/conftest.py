"""Fixtures for the LangChain adapter tests: the real tiny preset (weights load once per process, through
specfuse_core's member cache) and real sentence embeddings for the RAG test."""

from __future__ import annotations

import os

import pytest
from minilm import MiniLMEmbeddings  # examples/minilm.py: the one copy

from langchain_specfuse import ChatSpecFuse

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

MAX_TOKENS = 16  # the CI machines have 2 CPU cores: keep every generation short


@pytest.fixture(scope="session")
def chat() -> ChatSpecFuse:
    """ChatSpecFuse on the real tiny preset, loaded up front so tests time generation, not loading."""
    model = ChatSpecFuse(preset="tiny", max_tokens=MAX_TOKENS)
    model.ensemble  # noqa: B018 - load (or reuse) the members now
    return model


@pytest.fixture(scope="session")
def embeddings() -> MiniLMEmbeddings:
    return MiniLMEmbeddings()
