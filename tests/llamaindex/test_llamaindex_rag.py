"""Retrieval-augmented generation end to end, offline and on real models: documents ->
SentenceSplitter -> VectorStoreIndex (all-MiniLM-L6-v2 embeddings) -> query / chat engines whose
LLM is SpecFuseLLM over the tiny preset. The answer needs a made-up fact that only the documents
hold, and the stream is the ensemble's accepted segments."""

from __future__ import annotations

import pytest

from llamaindex_helpers import QUESTION, SECRET_CODE

pytestmark = pytest.mark.integration


def segment_texts(recorder) -> list[str]:
    return [e.text for e in recorder.named("SpecFuseSegmentEvent")]


def final_chat_text(recorder) -> str:
    (end,) = recorder.named("LLMChatEndEvent")
    return end.response.message.content


def test_retrieval_finds_the_document(rag_index):
    nodes = rag_index.as_retriever(similarity_top_k=1).retrieve(QUESTION)
    assert SECRET_CODE in nodes[0].node.get_content()


def test_streaming_query_engine(rag_index, tiny_llm, recorder):
    engine = rag_index.as_query_engine(llm=tiny_llm, streaming=True, similarity_top_k=1)
    response = engine.query(QUESTION)
    pieces = list(response.response_gen)
    answer = "".join(pieces)
    assert SECRET_CODE in answer
    assert pieces == segment_texts(recorder), "one streamed piece per accepted segment"
    assert answer == final_chat_text(recorder)
    assert len(recorder.named("LLMChatInProgressEvent")) == len(pieces)
    assert SECRET_CODE in response.source_nodes[0].node.get_content()


async def test_streaming_async_query_engine(rag_index, tiny_llm, recorder):
    engine = rag_index.as_query_engine(llm=tiny_llm, streaming=True, similarity_top_k=1)
    response = await engine.aquery(QUESTION)
    pieces = [piece async for piece in response.async_response_gen()]
    answer = "".join(pieces)
    assert SECRET_CODE in answer
    assert pieces == segment_texts(recorder)
    assert answer == final_chat_text(recorder)


def test_streaming_context_chat_engine(rag_index, tiny_llm, recorder):
    engine = rag_index.as_chat_engine(chat_mode="context", llm=tiny_llm, similarity_top_k=1)
    response = engine.stream_chat(QUESTION)
    pieces = list(response.response_gen)
    answer = "".join(pieces)
    assert SECRET_CODE in answer
    # the chat engine drops empty deltas; every non-empty segment is one piece
    assert pieces == [t for t in segment_texts(recorder) if t]
    assert answer == final_chat_text(recorder)
    assert response.response == answer.strip()
    history = engine.chat_history
    assert history[-2].content == QUESTION and history[-1].content == answer.strip()


async def test_streaming_async_context_chat_engine(rag_index, tiny_llm, recorder):
    engine = rag_index.as_chat_engine(chat_mode="context", llm=tiny_llm, similarity_top_k=1)
    response = await engine.astream_chat(QUESTION)
    pieces = [piece async for piece in response.async_response_gen()]
    answer = "".join(pieces)
    assert SECRET_CODE in answer
    assert pieces == [t for t in segment_texts(recorder) if t]
    assert answer == final_chat_text(recorder)


def test_example_script(tiny_llm, embed_model, capsys):
    import importlib.util
    from pathlib import Path

    from llama_index.core import Settings

    path = Path(__file__).resolve().parents[2] / "examples" / "llamaindex_rag.py"
    spec = importlib.util.spec_from_file_location("llamaindex_rag_example", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    saved = Settings._llm, Settings._embed_model
    try:
        answer = example.run(llm=tiny_llm, embed_model=embed_model)
    finally:
        Settings._llm, Settings._embed_model = saved
    assert SECRET_CODE in answer
    out = capsys.readouterr().out
    assert "segments:" in out and "round 1:" in out
