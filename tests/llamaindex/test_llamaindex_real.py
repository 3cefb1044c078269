"""SpecFuseLLM on the real tiny preset: metadata from the loaded members, and stop sequences."""

from __future__ import annotations

import pytest
from llama_index.core.base.llms.types import ChatMessage, MessageRole

from llamaindex_helpers import MAX_NEW_TOKENS

pytestmark = pytest.mark.integration

PROMPT = "Name the planets of the solar system."


def test_metadata_of_the_loaded_preset(tiny_llm):
    members = tiny_llm.ensemble.members
    assert [m.name for m in members] == ["smollm2-135m", "gemma3-270m", "qwen2.5-coder-0.5b"]
    meta = tiny_llm.metadata
    smallest = min(m.context_window for m in members)
    assert meta.context_window == smallest - (MAX_NEW_TOKENS + 4 * tiny_llm.segment_tokens)
    assert meta.num_output == MAX_NEW_TOKENS and meta.is_chat_model
    assert meta.model_name == "specfuse:tiny"  # the name ChatSpecFuse reports too
    assert tiny_llm.to_payload()["context_window"] == meta.context_window


def test_another_instance_reuses_the_loaded_weights(tiny_llm):
    from llamaindex_specfuse import SpecFuseLLM

    other = SpecFuseLLM(preset="tiny", max_new_tokens=8).load()
    assert [id(m) for m in other.ensemble.members] == [id(m) for m in tiny_llm.ensemble.members]


def test_stop_sequence_cuts_the_greedy_answer(tiny_llm):
    full = tiny_llm.complete(PROMPT, max_new_tokens=16).text
    words = full.split()
    assert len(words) >= 3, full
    stop = words[2]
    expected = full[: full.index(stop)]

    chunks = list(tiny_llm.stream_chat([ChatMessage(role=MessageRole.USER, content=PROMPT)], max_new_tokens=16, stop=[stop]))
    streamed = "".join(c.delta for c in chunks)
    assert streamed == chunks[-1].message.content == expected
    assert stop not in streamed
    assert chunks[-1].additional_kwargs["finish_reason"] == "stop_sequence"
