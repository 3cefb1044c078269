"""ChatSpecFuse.batch/abatch go through the batched engine with no user change: outputs identical to
sequential invokes, and rounds actually shared."""

from __future__ import annotations

import asyncio

import pytest

pytestmark = pytest.mark.integration

PROMPTS = ["Name a colour.", "Say hello in French.", "What is 2 + 2?", "Name a fruit."]


def test_batch_and_abatch_share_rounds_and_match_sequential_invokes(chat):
    sequential = [chat.invoke(p).content for p in PROMPTS]
    before = chat.ensemble.batching["batched_rounds"]
    assert [m.content for m in chat.batch(PROMPTS)] == sequential
    after_batch = chat.ensemble.batching["batched_rounds"]
    assert after_batch > before
    assert [m.content for m in asyncio.run(chat.abatch(PROMPTS))] == sequential
    assert chat.ensemble.batching["batched_rounds"] > after_batch
