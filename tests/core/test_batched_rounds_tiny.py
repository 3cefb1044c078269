"""Batched rounds on the real tiny preset (shared drafting and pooled scoring): concurrent requests get
their sequential outputs byte for byte."""

from __future__ import annotations

import threading

import pytest

pytestmark = pytest.mark.integration

PROMPTS = ["Explain how tides work.", "Write a haiku about bread.", "What is a volcano?", "Give one chess tip."]


def test_concurrent_tiny_requests_match_sequential_ones(tiny_ensemble):
    sequential = [tiny_ensemble.generate(p, max_new_tokens=24).text for p in PROMPTS]
    pooled_before = tiny_ensemble.batching["shared_scoring_passes"]
    results = [None] * len(PROMPTS)

    def run(i):
        results[i] = tiny_ensemble.generate(PROMPTS[i], max_new_tokens=24)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(PROMPTS))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.text for r in results] == sequential
    assert sum(u.shared_forward_calls for r in results for u in r.usage.members.values()) > 0
    assert tiny_ensemble.batching["shared_scoring_passes"] > pooled_before  # the second opinions were pooled too
