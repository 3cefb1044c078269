"""Shared test data and helpers of the LlamaIndex adapter tests (a uniquely named module, so it
never collides with other test folders' helpers when the whole suite runs)."""

from __future__ import annotations

from typing import Any, List

from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from minilm import MiniLMEmbedding  # noqa: F401 - examples/minilm.py: the one copy, imported by conftest from here

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
