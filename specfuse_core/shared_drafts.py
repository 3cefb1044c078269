"""Before a batch of rounds runs, draft for all its requests in shared forward passes.

Each request's round then finds its drafts already made (the session holds them) and goes on as if it
had drafted alone: judging, scoring, accepting and fault handling stay per request. Only members that
offer ``draft_together`` (local members with row-invariant decoding) take part; others draft in the
round as before. Torch-free: the members do the model work.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from contextlib import ExitStack

from .rounds import EnsembleRequest

logger = logging.getLogger(__name__)


def share_drafts(requests: Sequence[EnsembleRequest]) -> None:
    """Run the first draft calls of these requests' next rounds, grouped by member."""
    with ExitStack() as held:
        groups: dict[int, tuple[object, list[tuple]]] = {}
        for request in requests:
            if not _hold(request, held):  # stepping or closing elsewhere: it drafts in its round
                continue
            for member, session, response, max_tokens, align in request.planned_drafts():
                if not getattr(member, "row_invariant", False) or not hasattr(member, "draft_together"):
                    continue
                groups.setdefault(id(member), (member, []))[1].append((session, response, max_tokens, align))
        for member, jobs in groups.values():
            if len(jobs) < 2:
                continue  # nothing to share: the round drafts it alone, exactly the same way
            try:
                member.draft_together(jobs)
            except Exception:  # errors of a draft are held by its session; this is a bug in the sharing itself
                logger.exception("shared drafting on %r failed; its requests draft alone", getattr(member, "name", member))
                for session, *_ in jobs:
                    session.close()  # never reuse a cache left half-updated (a closed session re-prefills)


def _hold(request: EnsembleRequest, stack: ExitStack) -> bool:
    """Take the request's round lock for the shared drafts (``close`` from another thread waits for it)."""
    lock: threading.Lock = request._lock
    if not lock.acquire(blocking=False):
        return False
    stack.callback(lock.release)
    return not request.done
