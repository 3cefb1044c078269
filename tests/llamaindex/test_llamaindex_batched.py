"""Concurrent LlamaIndex calls go through the batched engine with no user change: outputs identical to
sequential calls, and rounds actually shared."""

from __future__ import annotations

import asyncio

import pytest

pytestmark = pytest.mark.integration

PROMPTS = ["Name a colour.", "Say hello in French.", "What is 2 + 2?", "Name a fruit."]


def test_concurrent_acomplete_calls_share_rounds_and_match_sequential_calls(tiny_llm):
    sequential = [tiny_llm.complete(p).text for p in PROMPTS]
    before = tiny_llm.ensemble.batching["batched_rounds"]

    async def together():
        return await asyncio.gather(*(tiny_llm.acomplete(p) for p in PROMPTS))

    assert [r.text for r in asyncio.run(together())] == sequential
    assert tiny_llm.ensemble.batching["batched_rounds"] > before
