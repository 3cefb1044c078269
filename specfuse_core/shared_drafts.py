"""Before a batch of rounds runs, draft for all its requests in shared forward passes.

Each request's round then finds its drafts already made (the session holds them) and goes on as if it
had drafted alone: judging, scoring, accepting and fault handling stay per request. Only members that
offer ``draft_together`` (local members with row-invariant decoding) take part; others draft in the
round as before. The drafts a round adds inside it (the other drafters after an unsure or doubted
lead) meet the same way in :mod:`.pooled_scoring`. Torch-free: the members do the model work.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .rounds import EnsembleRequest

logger = logging.getLogger(__name__)

#: one draft call: (member, session, response, max_tokens, align)
DraftCall = tuple[Any, Any, str, int, bool]


def share_drafts(requests: Sequence["EnsembleRequest"]) -> None:
    """Run the first draft calls of these requests' next rounds, grouped by member."""
    with ExitStack() as held:
        calls: list[DraftCall] = []
        for request in requests:
            if not _hold(request, held):  # stepping or closing elsewhere: it drafts in its round
                continue
            try:
                calls += request.planned_drafts()
            except Exception:  # e.g. nobody left to draft: the request's own round raises it, to its owner
                continue
        draft_in_shared_passes(calls)


def can_share(member: Any) -> bool:
    """Whether a member drafts for several requests in shared passes (local, row-invariant decoding)."""
    return bool(getattr(member, "row_invariant", False)) and hasattr(member, "draft_together")


def draft_in_shared_passes(calls: Iterable[DraftCall]) -> int:
    """Run draft calls of different requests, grouped by member, in shared decode passes; each session
    holds its outcome for its round's own ``draft`` call. A member with a single call (or that cannot
    share) is left to draft in the round, exactly the same way. Returns the members that shared."""
    groups: dict[int, tuple[Any, list[tuple]]] = {}
    for member, session, response, max_tokens, align in calls:
        if can_share(member):
            groups.setdefault(id(member), (member, []))[1].append((session, response, max_tokens, align))
    shared = 0
    for member, jobs in groups.values():
        if len(jobs) < 2:
            continue
        try:
            member.draft_together(jobs)
            shared += 1
        except Exception:  # errors of a draft are held by its session; this is a bug in the sharing itself
            logger.exception("shared drafting on %r failed; its requests draft alone", getattr(member, "name", member))
            for session, *_ in jobs:
                session.close()  # never reuse a cache left half-updated (a closed session re-prefills)
    return shared


def _hold(request: "EnsembleRequest", stack: ExitStack) -> bool:
    """Take the request's round lock for the shared drafts (``close`` from another thread waits for it)."""
    lock: threading.Lock = request._lock
    if not lock.acquire(blocking=False):
        return False
    stack.callback(lock.release)
    return not request.done
