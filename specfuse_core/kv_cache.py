"""The few cache operations the engine needs on a transformers ``DynamicCache``: crop and splice.

Rollback is a crop (as in transformers' ``candidate_generator``); reusing a verified candidate's
keys/values is a splice that moves its block next to the shared context, with no recomputation.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import DynamicCache


def new_cache() -> DynamicCache:
    # No config on purpose: every layer keeps full history, so crops never hit a sliding-window
    # layer that has already discarded the tokens it would roll back to. Sliding attention is still
    # applied by the model's (or our) attention masks.
    return DynamicCache()


def cache_length(cache: DynamicCache) -> int:
    return cache.get_seq_length()


def crop_to(cache: DynamicCache, length: int) -> None:
    excess = cache_length(cache) - length
    if excess > 0:
        cache.crop(-excess)


def splice(cache: DynamicCache, keep: int, start: int, end: int) -> None:
    """Keep positions ``[0, keep)`` followed by ``[start, end)``; drop everything else."""
    for layer in cache.layers:
        if not getattr(layer, "is_initialized", True) or layer.keys is None or layer.keys.numel() == 0:
            continue
        layer.keys = torch.cat([layer.keys[..., :keep, :], layer.keys[..., start:end, :]], dim=-2)
        layer.values = torch.cat([layer.values[..., :keep, :], layer.values[..., start:end, :]], dim=-2)


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i
