"""Decode steps whose result for a request does not depend on who else is in the batch.

Batched drafting must give every request the tokens it gets alone (greedy), bit for bit. On CPU (and
GPU) a matrix product's rows come out with different last bits when the number of rows changes (the
kernel blocks the reduction differently), so a padded batch of 4 and a lone request would drift apart.
Two rules make a decode step *row-invariant*:

* the linear layers always see the same number of rows (``block``): a lone request is padded with
  dummy rows, a bigger batch is cut into blocks. With a fixed row count a row's result does not
  depend on its neighbours or its position (checked in ``tests/core/test_rows_invariance.py``);
* attention runs row by row on each request's own, unpadded cache (:class:`RowsCache`), through the
  model's own attention function: a row sees exactly the keys it would see alone.

The one-token decode steps of drafting go through here, alone or batched alike. Concurrent requests'
prefills and scoring passes share a pass through :func:`packed_rows` (their tokens one after another
in a single row, each request's attention its own); a lone request's prefill and scoring pass are its
session's own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from transformers import AttentionInterface
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

PREFIX = "specfuse_rows_"


class RowStates:
    """Per-request keys (or values) of one layer: each request's own cache, unpadded. ``lengths`` and
    ``masks`` (packed scoring of several requests) give each request's segment of the packed row and
    its own attention mask; without them every batch row is one query token that sees all its keys."""

    def __init__(self, rows: list[torch.Tensor], lengths: list[int] | None = None, masks: list[Any] | None = None) -> None:
        self.rows = rows
        self.lengths = lengths
        self.masks = masks


class RowsCache:
    """The cache object of one batched decode step: row ``i`` appends to and reads from request ``i``'s
    own cache (``None``: a dummy row, which attends to itself only). Looks enough like a transformers
    ``Cache`` for mask building, whose result the row attention ignores."""

    is_compileable = False

    def __init__(self, caches: Sequence[Any | None], num_layers: int, lengths: list[int] | None = None, masks: list[Any] | None = None) -> None:
        """``lengths``/``masks``: several requests' query tokens packed one after another in a single
        row, each request's length and attention mask (see :func:`packed_rows`)."""
        self.caches = list(caches)
        self.lengths = lengths
        self.masks = masks
        self.is_sliding = [False] * num_layers
        self.is_linear = [False] * num_layers
        self.is_dummy = [False] * num_layers

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args: Any, **kwargs: Any):
        keys, values = [], []
        starts = _starts(self.lengths) if self.lengths is not None else None
        for i, cache in enumerate(self.caches):
            if starts is None:  # one decode row per request
                k, v = key_states[i : i + 1], value_states[i : i + 1]
            else:  # request i's tokens are a segment of the one packed row
                segment = slice(starts[i], starts[i] + self.lengths[i])
                k, v = key_states[:, :, segment], value_states[:, :, segment]
            if cache is not None:
                k, v = cache.update(k, v, layer_idx)
            keys.append(k)
            values.append(v)
        return RowStates(keys, self.lengths, self.masks), RowStates(values)

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return 0

    def get_query_offset(self, layer_idx: int = 0) -> int:
        return 0

    def get_mask_sizes(self, query_length: int, layer_idx: int = 0) -> tuple[int, int]:
        return query_length, 0


def _row_attention(original: Callable[..., Any]) -> Callable[..., Any]:
    """The model's attention function, applied row by row when the keys are :class:`RowStates` (one
    query token per row: no mask needed; a sliding-window layer sees its last ``window`` keys)."""

    def attention(module: Any, query: torch.Tensor, key: Any, value: Any, attention_mask: Any, **kwargs: Any):
        if not isinstance(key, RowStates):
            return original(module, query, key, value, attention_mask, **kwargs)
        window = kwargs.get("sliding_window") or getattr(module, "sliding_window", None)
        if key.masks is not None:
            return _packed_row_attention(original, module, query, key, value, window, **kwargs)
        outputs = []
        for i, (k, v) in enumerate(zip(key.rows, value.rows)):
            if window:
                k, v = k[:, :, -window:], v[:, :, -window:]
            out, _ = original(module, query[i : i + 1], k, v, None, **kwargs)
            outputs.append(out)
        return torch.cat(outputs, dim=0), None

    return attention


def _packed_row_attention(original: Callable[..., Any], module: Any, query: torch.Tensor, key: RowStates, value: RowStates, window: int | None, **kwargs: Any):
    """Each request's segment of the packed queries against its own keys under its own mask (the
    sliding-window mask on sliding layers), exactly the call a lone scoring pass makes; the outputs
    go back into one packed row."""
    assert key.lengths is not None and key.masks is not None
    outputs = []
    for k, v, start, length, mask in zip(key.rows, value.rows, _starts(key.lengths), key.lengths, key.masks):
        if isinstance(mask, dict):
            mask = mask["sliding_attention" if window else "full_attention"]
        # the lone pass's mask is a forward argument that device hooks move per layer; this one is not
        mask = mask.to(query.device)
        out, _ = original(module, query[:, :, start : start + length], k, v, mask, **kwargs)
        outputs.append(out)
    return torch.cat(outputs, dim=1), None


def _starts(lengths: Sequence[int]) -> list[int]:
    """Where each segment of a packed row begins."""
    starts, at = [], 0
    for length in lengths:
        starts.append(at)
        at += length
    return starts


def packed_rows(
    model: Any, cache_kwarg: str, caches: Sequence[Any], ids: Sequence[Sequence[int]], positions: Sequence[Sequence[int]],
    masks: Sequence[Any], keep: Sequence[Sequence[int]],
) -> list[torch.Tensor]:
    """Several requests' packed scoring passes in one forward pass: request ``i`` feeds ``ids[i]`` at
    ``positions[i]`` on top of cache ``i`` under its own attention mask (as built for its lone pass).
    The requests' tokens go one after another into a single row, without padding, so the linear
    layers see only real tokens (padding to the longest request cost up to 4x the work when one
    request catches up on a long accepted text); returns each request's logits at its ``keep[i]``
    positions (the output layer runs only at kept positions).

    Attention is each request's own (the same call as alone); the linear layers see all requests'
    tokens at once, so the last bits may differ from the lone pass, as with batched drafting's
    default rows."""
    device = next(model.parameters()).device
    lengths = [len(row) for row in ids]
    starts = _starts(lengths)
    input_ids = torch.tensor([[t for row in ids for t in row]], dtype=torch.long, device=device)
    position_ids = torch.tensor([[p for row in positions for p in row]], dtype=torch.long, device=device)
    rows_cache = RowsCache(list(caches), _num_layers(model), lengths, list(masks))
    kept = [start + r for start, rows in zip(starts, keep) for r in rows]
    with torch.inference_mode():
        out = model(
            input_ids=input_ids, position_ids=position_ids, use_cache=True,
            logits_to_keep=torch.tensor(kept, device=device), **{cache_kwarg: rows_cache},
        )
    logits, out_rows = out.logits[0], []
    at = 0
    for rows in keep:
        out_rows.append(logits[at : at + len(rows)])
        at += len(rows)
    return out_rows


def install(model: Any) -> None:
    """Route ``model``'s attention through :func:`_row_attention` (its usual path is untouched: the
    wrapper calls the original function with the original arguments and mask)."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    original = config._attn_implementation or "sdpa"
    if original.startswith(PREFIX):
        return
    name = PREFIX + original
    if name not in ALL_ATTENTION_FUNCTIONS:
        function = ALL_ATTENTION_FUNCTIONS[original] if original != "eager" else _eager(model)
        AttentionInterface.register(name, _row_attention(function))
        if original in ALL_MASK_ATTENTION_FUNCTIONS:
            AttentionMaskInterface.register(name, ALL_MASK_ATTENTION_FUNCTIONS[original])
    model.set_attn_implementation(name)


def _eager(model: Any) -> Callable[..., Any]:
    """The eager attention of ``model``'s own modeling module (each architecture has its own)."""
    import sys

    module = sys.modules[type(model).__module__]
    return module.eager_attention_forward


def decode_rows(model: Any, cache_kwarg: str, caches: Sequence[Any], tokens: Sequence[int], positions: Sequence[int], block: int | None) -> torch.Tensor:
    """Next-token logits (one row per request, float32) after feeding each request its ``tokens[i]`` at
    ``positions[i]`` on top of its own cache; runs ``ceil(n / block)`` forward passes of ``block`` rows
    (``None``: one pass of ``n`` rows, no padding, so the bits follow ``n``)."""
    device = next(model.parameters()).device
    block = block or len(tokens)
    num_layers = _num_layers(model)
    rows = []
    for lo in range(0, len(tokens), block):
        chunk = slice(lo, lo + block)
        pad = block - len(tokens[chunk])
        ids = torch.tensor([[t] for t in tokens[chunk]] + [[0]] * pad, dtype=torch.long, device=device)
        pos = torch.tensor([[p] for p in positions[chunk]] + [[0]] * pad, dtype=torch.long, device=device)
        rows_cache = RowsCache(list(caches[chunk]) + [None] * pad, num_layers)
        with torch.inference_mode():
            out = model(input_ids=ids, position_ids=pos, use_cache=True, logits_to_keep=1, **{cache_kwarg: rows_cache})
        rows.append(out.logits[: block - pad, -1])
    return torch.cat(rows, dim=0)


def _num_layers(model: Any) -> int:
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    return int(config.num_hidden_layers)
