"""ChatSpecFuse.batch/abatch go through the batched engine with no user change: outputs identical to
sequential invokes, and rounds actually shared, all inputs in one batch up to the ensemble's cap."""

from __future__ import annotations

import asyncio

import pytest

pytestmark = pytest.mark.integration

# eight inputs: more than LangChain's default thread pool runs at once on a 2-core machine (cores + 4)
PROMPTS = ["Name a colour.", "Say hello in French.", "What is 2 + 2?", "Name a fruit.",
           "Name an animal.", "Say yes.", "Name a month.", "What is 3 + 1?"]


@pytest.fixture
def batch_sizes(chat):
    """The number of requests in each batch of rounds the ensemble runs while the test does."""
    rounds = chat.ensemble._rounds
    original = rounds.prepare
    sizes: list[int] = []
    rounds.prepare = lambda requests: (sizes.append(len(requests)), original(requests))
    yield sizes
    rounds.prepare = original


def test_batch_and_abatch_share_rounds_and_match_sequential_invokes(chat, batch_sizes):
    assert chat.ensemble.config.max_batch_requests == len(PROMPTS)
    sequential = [chat.invoke(p).content for p in PROMPTS]
    assert batch_sizes == []  # one request at a time: no shared rounds
    assert [m.content for m in chat.batch(PROMPTS)] == sequential
    assert max(batch_sizes) == len(PROMPTS)  # every input at once, not the default pool's cores + 4
    batch_sizes.clear()
    assert [m.content for m in asyncio.run(chat.abatch(PROMPTS))] == sequential
    assert max(batch_sizes) == len(PROMPTS)  # async rounds have threads enough for a full batch


def test_a_callers_max_concurrency_is_kept(chat, batch_sizes):
    assert [m.content for m in chat.batch(PROMPTS[:4], config={"max_concurrency": 2})] == [chat.invoke(p).content for p in PROMPTS[:4]]
    assert batch_sizes and max(batch_sizes) <= 2
