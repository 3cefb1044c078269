"""The few cache operations the engine needs on a transformers ``DynamicCache``: crop and splice.

Rollback is a crop (as in transformers' ``candidate_generator``); reusing a verified candidate's
keys/values is a splice that moves its block next to the shared context, with no recomputation.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer


class GrowableLayer(DynamicLayer):
    """A ``DynamicLayer`` that writes into a preallocated buffer whose capacity doubles, instead of
    ``torch.cat``-ing the whole history on every token: appending costs O(new tokens), cropping is
    free, and a splice moves one block in place."""

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.device = key_states.device
        self._keys = self._values = None
        self._length = 0
        self.keys, self.values = key_states[..., :0, :], value_states[..., :0, :]
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self._length + key_states.shape[-2]
        if self._keys is None or end > self._keys.shape[-2]:
            self._grow(key_states, value_states, end)
        self._keys[..., self._length : end, :] = key_states
        self._values[..., self._length : end, :] = value_states
        self._set_length(end)
        return self.keys, self.values

    def _grow(self, key_states: torch.Tensor, value_states: torch.Tensor, needed: int) -> None:
        capacity = max(needed, 256, 2 * (self._keys.shape[-2] if self._keys is not None else 0))
        keys = key_states.new_empty(*key_states.shape[:-2], capacity, key_states.shape[-1])
        values = value_states.new_empty(*value_states.shape[:-2], capacity, value_states.shape[-1])
        if self._keys is not None:
            keys[..., : self._length, :] = self._keys[..., : self._length, :]
            values[..., : self._length, :] = self._values[..., : self._length, :]
        self._keys, self._values = keys, values

    def _set_length(self, length: int) -> None:
        self._length = length
        self.keys = self._keys[..., :length, :]
        self.values = self._values[..., :length, :]

    def get_seq_length(self) -> int:
        return self._length if self.is_initialized else 0

    def crop(self, tokens_to_remove: int) -> None:
        if tokens_to_remove > 0:
            raise ValueError("crop takes a negative number of tokens to remove")
        if self.is_initialized and tokens_to_remove:
            self._set_length(max(0, self._length - abs(tokens_to_remove)))

    def splice(self, keep: int, start: int, end: int) -> None:
        if not self.is_initialized:
            return
        block = end - start
        if block and start != keep:
            self._keys[..., keep : keep + block, :] = self._keys[..., start:end, :].clone()
            self._values[..., keep : keep + block, :] = self._values[..., start:end, :].clone()
        self._set_length(keep + block)

    def reset(self) -> None:
        self._keys = self._values = None
        self._length = 0
        super().reset()


class GrowableCache(DynamicCache):
    """``DynamicCache`` whose layers are :class:`GrowableLayer`. No config on purpose: every layer keeps
    full history, so crops never hit a sliding-window layer that already discarded the tokens it would
    roll back to; sliding attention is still applied by the attention masks."""

    def __init__(self) -> None:
        super().__init__()
        self.layer_class_to_replicate = GrowableLayer


def new_cache() -> GrowableCache:
    return GrowableCache()


def cache_length(cache: DynamicCache) -> int:
    return cache.get_seq_length()


def crop_to(cache: DynamicCache, length: int) -> None:
    excess = cache_length(cache) - length
    if excess > 0:
        cache.crop(-excess)


def splice(cache: GrowableCache, keep: int, start: int, end: int) -> None:
    """Keep positions ``[0, keep)`` followed by ``[start, end)``; drop everything else."""
    with torch.inference_mode():  # the buffers are inference tensors
        for layer in cache.layers:
            layer.splice(keep, start, end)


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i
