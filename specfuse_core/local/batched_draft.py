"""Drafting for several requests in shared decode passes: each request keeps its own cache and its own
token choice (:meth:`LocalSession.next_token`); only the forward passes are shared."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .rows import decode_rows

if TYPE_CHECKING:
    from .member import Member
    from .session import LocalSession


def draft_together(member: "Member", jobs: Sequence[tuple["LocalSession", str, int, bool]]) -> None:
    """Run the drafts ``(session, response, max_tokens, align)`` of different requests on ``member``:
    prefill per request, then one decode pass (per ``member.decode_block`` rows, or of all of them when
    it is ``None``) per token for all drafts still going. Each outcome is held by its session for the
    round's ``draft`` call; an error is held by the sessions it hit (a failed shared pass: every
    session in it) and raised there."""
    going: list[tuple[LocalSession, tuple[str, int, bool]]] = []
    for session, response, max_tokens, align in jobs:
        key = (response, max_tokens, align)
        try:
            session.begin_draft(response, max_tokens)
        except Exception as error:
            session.hold_shared(key, error=error)
            continue
        going.append((session, key))
    failed: set[int] = set()
    while True:
        feeding = [(s, k) for s, k in going if id(s) not in failed and s.pending_token is not None]
        if not feeding:
            break
        sessions = [s for s, _ in feeding]
        try:
            logits = decode_rows(
                member.model, member._cache_kwarg, [s.cache for s in sessions],
                [s.pending_token for s in sessions], [len(s.cached_ids) for s in sessions], member.decode_block,
            )
        except Exception as error:
            for session, key in feeding:
                session.hold_shared(key, error=error)
                failed.add(id(session))
            continue
        block = member.decode_block or len(feeding)
        for index, ((session, key), row) in enumerate(zip(feeding, logits)):
            try:
                session.feed_draft(row)
                if min(block, len(feeding) - index // block * block) > 1:  # its pass carried another request
                    session.counters.shared_forward_calls += 1
            except Exception as error:
                session.hold_shared(key, error=error)
                failed.add(id(session))
    for session, key in going:
        if id(session) in failed:
            continue
        try:
            session.hold_shared(key, draft=session.end_draft(key[2]))
        except Exception as error:
            session.hold_shared(key, error=error)
