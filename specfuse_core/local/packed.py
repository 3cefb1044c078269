"""Packed scoring: every candidate of a round in one forward pass, as blocks behind the shared context.

The layout is planned from token lists alone (:func:`plan_packed_pass`), so it can be read and tested
apart from the session that owns the cache; :func:`packed_mask` turns a plan into the attention mask.

Input:  ``[shared context tail | block 1 | block 2 | ...]``
Keys:   ``[cache prefix | hidden draft region | the packed tokens]``

Each block sees the cache prefix, the shared tail up to its own start, and itself causally; never
another block nor the hidden draft (a member's own draft, whose keys/values stay in the cache to be
reused when it wins). Logits are kept only at rows that predict a candidate token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class PackedPass:
    """The layout of one scoring pass."""

    start: int  # cache length the pass builds on (the cache is cropped to it)
    hidden: int  # cached draft tokens after ``start`` that no packed token may see
    shared: list[int]  # context tokens re-fed before the blocks
    blocks: list[int]  # candidate indices packed, in order
    keeps: list[int]  # per packed block: the context prefix it attends to
    lengths: list[int]  # per packed block: tokens fed
    ids: list[int] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)  # logits rows to keep
    row_slices: dict[int, tuple[int, int]] = field(default_factory=dict)  # candidate -> its slice of ``rows``
    block_starts: list[int] = field(default_factory=list)  # cache offset of every candidate's block


def plan_packed_pass(
    context_len: int, keeps: Sequence[int], inputs: Sequence[Sequence[int]], start: int, hidden: int, shared: list[int], skip: int | None
) -> PackedPass:
    """Lay out the candidates' ``inputs`` (their target tokens less the last) behind the context.

    ``skip``: a candidate not fed (the member's own draft, already cached in the hidden region); its
    block start is the context end. Without ``skip`` each block also keeps the row that predicts its
    first token (the context position before its ``keep``)."""
    blocks = [i for i in range(len(inputs)) if i != skip]
    plan = PackedPass(start, hidden, shared, blocks, [keeps[i] for i in blocks], [len(inputs[i]) for i in blocks])
    plan.positions = list(range(start, context_len))
    plan.block_starts = [context_len] * len(inputs)
    offset = len(shared)
    for i in blocks:
        keep, block = keeps[i], inputs[i]
        plan.block_starts[i] = start + hidden + offset
        plan.positions.extend(range(keep, keep + len(block)))
        first_rows = [] if skip is not None else [keep - 1 - start]
        plan.row_slices[i] = (len(plan.rows), len(plan.rows) + len(first_rows) + len(block))
        plan.rows.extend(first_rows)
        plan.rows.extend(range(offset, offset + len(block)))
        offset += len(block)
    plan.ids = shared + [t for i in blocks for t in inputs[i]]
    return plan


def packed_mask(
    plan: PackedPass, layer_types: Sequence[str] | None, sliding_window: int | None, dtype: torch.dtype, device: Any, name: str
) -> Any:
    """Additive attention mask of a plan (one per layer type when the model mixes full and sliding
    attention; sliding-window layers get the same mask limited to their window)."""
    start, hidden, n_shared = plan.start, plan.hidden, len(plan.shared)
    q_len = n_shared + sum(plan.lengths)
    base = start + hidden  # key column of the first packed token
    allowed = torch.zeros(q_len, base + q_len, dtype=torch.bool)
    allowed[:, :start] = True
    allowed[:n_shared, base : base + n_shared] = torch.tril(torch.ones(n_shared, n_shared, dtype=torch.bool))
    row = n_shared
    for keep, length in zip(plan.keeps, plan.lengths):
        if length == 0:
            continue
        allowed[row : row + length, base : base + keep - start] = True
        allowed[row : row + length, base + row : base + row + length] = torch.tril(torch.ones(length, length, dtype=torch.bool))
        row += length
    masks = {"full_attention": allowed}
    types = set(layer_types or [])
    if "sliding_attention" in types and sliding_window:
        hidden_pos = torch.full((hidden,), -(10**9), dtype=torch.long)  # never visible anyway
        key_pos = torch.cat([torch.arange(start), hidden_pos, torch.tensor(plan.positions, dtype=torch.long)])
        query_pos = torch.tensor(plan.positions, dtype=torch.long)
        masks["sliding_attention"] = allowed & (key_pos[None, :] > query_pos[:, None] - sliding_window)
    unknown = types - set(masks)
    if unknown:
        raise NotImplementedError(f"member {name!r} has attention layer types {sorted(unknown)} that packed scoring does not support")
    additive = {
        key: torch.zeros(value.shape, dtype=dtype).masked_fill(~value, torch.finfo(dtype).min)[None, None].to(device)
        for key, value in masks.items()
    }
    return additive if layer_types else additive["full_attention"]


def block_logprobs(plan: PackedPass, logprobs: torch.Tensor | None, index: int, target: Sequence[int]) -> list[float]:
    """Log-probs of the tokens of ``target`` that the pass predicted for candidate ``index`` (its last
    ones: without a first row, the first token is predicted elsewhere)."""
    lo, hi = plan.row_slices[index]
    if hi == lo:
        return []
    assert logprobs is not None
    from_pass = target[len(target) - (hi - lo) :]
    return logprobs[lo:hi].gather(1, torch.tensor(from_pass, device=logprobs.device)[:, None])[:, 0].tolist()
