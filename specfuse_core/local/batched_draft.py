"""Drafting for several requests in shared decode passes: each request keeps its own cache and its own
token choice (:meth:`LocalSession.next_token`); only the forward passes are shared."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .packed import packed_mask
from .rows import decode_rows, packed_rows

if TYPE_CHECKING:
    from .member import Member
    from .session import LocalSession, PrefillJob


def draft_together(member: "Member", jobs: Sequence[tuple["LocalSession", str, int, bool]]) -> None:
    """Run the drafts ``(session, response, max_tokens, align)`` of different requests on ``member``:
    their prefills (packed in one pass where they are short, :func:`_prefill`), then one decode pass
    (per ``member.decode_block`` rows, or of all of them when it is ``None``) per token for all drafts
    still going. Each outcome is held by its session for the
    round's ``draft`` call; an error is held by the sessions it hit (a failed shared pass: every
    session in it) and raised there."""
    going = _prefill(member, jobs)
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


#: A prefill longer than this runs in its session's own pass: a long pass already keeps the matrix units
#: busy, and a packed one needs an explicit mask per request (query length x cache length).
PACKED_PREFILL_MAX_TOKENS = 256


def _prefill(member: "Member", jobs: Sequence[tuple["LocalSession", str, int, bool]]) -> list[tuple["LocalSession", tuple[str, int, bool]]]:
    """Sync every draft's cache to its context and pick its first token. Short prefills (the accepted
    text this member has not seen yet, a few dozen tokens; one pass each cost a fifth of the wall time
    at 8 concurrent requests) go into one packed pass (:func:`.rows.packed_rows`). A lone short
    prefill, a long one, and those of a batch-invariant member (``decode_block`` set: the bits of a
    lone pass) run their session's own pass. Returns the drafts that started, with their keys."""
    planned = []
    for session, response, max_tokens, align in jobs:
        key = (response, max_tokens, align)
        try:
            planned.append((session, key, session.plan_prefill(response, max_tokens)))
        except Exception as error:
            session.hold_shared(key, error=error)
    packable = member.decode_block is None
    together = [p for p in planned if packable and len(p[2].plan.ids) <= PACKED_PREFILL_MAX_TOKENS]
    if len(together) < 2:
        together = []
    started = _packed_prefill(member, together)
    packed = {id(session) for session, _, _ in together}
    for session, key, job in planned:
        if id(session) in packed:
            continue
        try:
            session.prefill_alone(job)
        except Exception as error:
            session.hold_shared(key, error=error)
            continue
        started.add(id(session))
    return [(session, key) for session, key, _ in planned if id(session) in started]


def _packed_prefill(member: "Member", planned: list[tuple["LocalSession", tuple[str, int, bool], "PrefillJob"]]) -> set[int]:
    """The planned prefills in one packed pass; returns the ids of the sessions whose draft started
    (a failed pass is a fault of this member in each request in it)."""
    if not planned:
        return set()
    try:
        masks = [packed_mask(j.plan, member.layer_types, member.sliding_window, member.model.dtype, member.device, member.name) for _, _, j in planned]
        logits = packed_rows(
            member.model, member._cache_kwarg, [s.cache for s, _, _ in planned], [j.plan.ids for _, _, j in planned],
            [j.plan.positions for _, _, j in planned], masks, [j.plan.rows for _, _, j in planned],
        )
    except Exception as error:  # the pass's caches are half-updated
        for session, key, _ in planned:
            session.hold_shared(key, error=error)
        return set()
    started = set()
    for (session, key, job), rows in zip(planned, logits):
        session.counters.forward_calls += 1
        session.counters.shared_forward_calls += 1
        try:
            session.finish_prefill(job, rows[-1])
        except Exception as error:
            session.hold_shared(key, error=error)
            continue
        started.add(id(session))
    return started
