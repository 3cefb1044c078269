"""A retrieval-augmented chain: real MiniLM embeddings, InMemoryVectorStore, a prompt, ChatSpecFuse on the
real tiny preset and StrOutputParser. The answer depends on a made-up fact found only in the documents."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable, RunnablePassthrough
from langchain_core.vectorstores import InMemoryVectorStore

from langchain_specfuse import SEGMENT_EVENT, ChatSpecFuse

pytestmark = pytest.mark.integration

DOCUMENTS = [
    "The keeper of the Varnholm lighthouse is a retired sailor named Oskar Brandvik.",  # the made-up fact
    "The lighthouse on Varnholm Island is painted teal and was built in 1911.",
    "The Varnholm ferry leaves the harbour every morning at 7:40.",
    "Teal paint fades quickly in salty sea air, so island houses are repainted often.",
    "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen.",
    "The Eiffel Tower in Paris was finished in 1889.",
]
QUESTION = "Who is the keeper of the Varnholm lighthouse?"
FACT = "Brandvik"  # appears only in the indexed documents

PROMPT = ChatPromptTemplate.from_messages(
    [
        ("system", "Answer the question using only the context. Reply with a short answer."),
        ("human", "Context:\n{context}\n\nQuestion: {question}"),
    ]
)


def _join(documents: list[Document]) -> str:
    return "\n".join(document.page_content for document in documents)


@pytest.fixture(scope="module")
def llm() -> ChatSpecFuse:
    # Short segments, so even a short answer arrives as several segments; a short cap keeps it cheap.
    return ChatSpecFuse(preset="tiny", max_tokens=8, segment_tokens=3)


@pytest.fixture(scope="module")
def retriever(embeddings: Any) -> Any:
    store = InMemoryVectorStore(embedding=embeddings)
    store.add_documents([Document(page_content=text, metadata={"line": i}) for i, text in enumerate(DOCUMENTS)])
    return store.as_retriever(search_kwargs={"k": 2})


@pytest.fixture(scope="module")
def rag_chain(retriever: Any, llm: ChatSpecFuse) -> Runnable:
    return {"context": retriever | _join, "question": RunnablePassthrough()} | PROMPT | llm | StrOutputParser()


@pytest.fixture(scope="module")
def answer(rag_chain: Runnable) -> str:
    return rag_chain.invoke(QUESTION)


def test_retriever_finds_the_fact_with_real_embeddings(retriever: Any) -> None:
    found = retriever.invoke(QUESTION)
    assert FACT in found[0].page_content


def test_rag_chain_answers_from_the_documents(answer: str, llm: ChatSpecFuse) -> None:
    assert FACT in answer
    # the fact is not something the ensemble knows without the documents
    assert FACT not in llm.invoke(QUESTION).content


async def test_streamed_rag_chain_delivers_segments_one_by_one_with_provenance(
    rag_chain: Runnable, llm: ChatSpecFuse, answer: str
) -> None:
    order: list[str] = []
    model_chunks: list[Any] = []
    parsed: list[str] = []
    custom: list[dict] = []
    async for event in rag_chain.astream_events(QUESTION, version="v2"):
        kind = event["event"]
        if kind == "on_chat_model_stream":
            order.append("segment")
            model_chunks.append(event["data"]["chunk"])
        elif kind == "on_custom_event" and event["name"] == SEGMENT_EVENT:
            order.append("event")
            custom.append(event["data"])
        elif kind == "on_chain_stream" and not event["parent_ids"]:  # the whole chain's output
            order.append("output")
            parsed.append(event["data"]["chunk"])

    assert "".join(parsed) == answer  # greedy decoding: streaming gives the invoked answer
    assert sum(1 for chunk in model_chunks if chunk.content) >= 2  # several segments ...
    assert order == ["event", "segment", "output"] * len(model_chunks)  # ... each delivered before the next
    records = [chunk.response_metadata["segments"] for chunk in model_chunks]
    assert all(len(r) == 1 for r in records)  # one segment (and its provenance) per chunk
    records = [r[0] for r in records]
    assert [r["round"] for r in records] == list(range(1, len(records) + 1))
    assert [r["text"] for r in records] == [c.content for c in model_chunks] == parsed
    assert all(r["member"] in llm.member_names and r["scores"] for r in records)
    assert [d["member"] for d in custom] == [r["member"] for r in records]
    last = model_chunks[-1]
    assert last.chunk_position == "last" and last.usage_metadata["output_tokens"] > 0
    assert last.response_metadata["trace"]["rounds"] == len(records)
