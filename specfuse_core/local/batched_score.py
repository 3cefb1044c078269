"""Scoring passes of several requests in one forward pass (:mod:`specfuse_core.pooled_scoring`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from .rows import packed_rows

if TYPE_CHECKING:
    from .member import Member
    from .session import LocalSession, ScoreJob


def score_together(member: "Member", jobs: Sequence[tuple["LocalSession", "ScoreJob"]]) -> list[torch.Tensor]:
    """Each job's log-probs at its kept rows, as :meth:`LocalSession.scoring_pass` gives them alone;
    every request's cache gains its own packed tokens only."""
    logits = packed_rows(
        member.model, member._cache_kwarg, [s.cache for s, _ in jobs],
        [j.plan.ids for _, j in jobs], [j.plan.positions for _, j in jobs], [j.mask for _, j in jobs],
        [j.plan.rows for _, j in jobs],
    )
    out = []
    for (session, _), rows in zip(jobs, logits):
        session.counters.forward_calls += 1
        session.counters.shared_forward_calls += 1
        out.append(torch.log_softmax(rows.float(), dim=-1))
    return out
