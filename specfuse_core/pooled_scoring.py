"""Pooled scoring: the rounds of a batch run in turns, and their scoring passes meet in one pass per member.

Batched drafting (:mod:`.shared_drafts`) shares the first draft calls of a batch's rounds, which are
known before the rounds start. Scoring is not: which candidates a request scores, and whether it
scores at all, is decided inside its round (gating, the second opinion, a full vote). So each round
of the batch runs in its own thread, one at a time (the turn passes in request order); a round that
reaches a scoring call plans its pass, parks it here and passes the turn on. Once every round of the
batch is parked or finished, the parked passes run, one forward pass per member for all the requests
that wait on it, and the rounds resume in turn. Only model work is shared: every request plans,
judges and accepts on its own, and an error in a shared pass is a fault of that member in each
request that was in it. Torch-free: the member's ``score_together`` does the model work.

The drafts a round adds after its lead (the other drafters, when the lead is unsure or doubted) park
here the same way (:meth:`ScoringPool.draft`) and run in shared decode passes
(:func:`.shared_drafts.draft_in_shared_passes`) before the round drafts: its sessions then hold them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from .openmp import release_openmp_workers
from .shared_drafts import DraftCall, draft_in_shared_passes

logger = logging.getLogger(__name__)

_READY, _PARKED, _DONE = "ready", "parked", "done"
_local = threading.local()


def current_pool() -> "ScoringPool | None":
    """The pool whose round runs in this thread, if any (member threads of a multi-device request
    see none: they score on their own)."""
    return getattr(_local, "pool", None)


class ScoringPool:
    def __init__(self, count: int, pool_drafts: bool = True) -> None:
        """``pool_drafts``: rounds also park the drafts they add after their lead (:meth:`draft`)."""
        self.pool_drafts = pool_drafts
        self._cond = threading.Condition()
        self._turn = 0
        self._state = [_READY] * count
        self._parked: dict[int, tuple[Any, Any]] = {}  # index -> (session, job)
        self._parked_drafts: dict[int, list[DraftCall]] = {}  # index -> the round's draft calls
        self._outcomes: dict[int, tuple[Any, BaseException | None]] = {}
        self.shared_passes = 0  # scoring passes that served two or more requests (for tests)
        self.shared_drafts = 0  # members whose parked drafts ran in shared passes, per wave (for tests)
        self.seconds = 0.0  # time in the parked scoring passes (for benchmarks)
        self.draft_seconds = 0.0  # time in the parked drafts (for benchmarks)
        self.started = 0  # rounds whose thread started (in order; the rest never ran)

    def run(self, rounds: Sequence[Callable[[], None]]) -> None:
        """Run each round (which must keep its own outcome and errors) in its own thread, in turns;
        returns once all have finished. An interrupt of the calling thread waits for them first."""
        threads = [threading.Thread(target=self._take_part, args=(i, r), name=f"specfuse-round-{i}", daemon=True) for i, r in enumerate(rounds)]
        try:
            for thread in threads:
                thread.start()
                self.started += 1
        except BaseException:
            with self._cond:  # rounds that never started count as finished, so the others are not left waiting
                for index in range(self.started, len(threads)):
                    self._state[index] = _DONE
                if self._turn >= self.started:
                    self._pass_turn(self._turn)
            for thread in threads[: self.started]:
                thread.join()
            raise
        try:
            for thread in threads:
                thread.join()
        except BaseException:
            for thread in threads:  # rounds in flight finish and keep their outcome; then the interrupt goes on
                thread.join()
            raise

    def score(self, session: Any, response: str, candidates: Sequence[Any], statistic: str) -> list[float]:
        """A round's scoring call: plan the pass, park it until the batch's passes run, finish it."""
        index = _local.index
        job = session.plan_score(response, candidates, statistic)
        with self._cond:
            self._parked[index] = (session, job)
            self._state[index] = _PARKED
            self._pass_turn(index)
            self._wait_for_turn(index)
            logprobs, error = self._outcomes.pop(index)
        if error is not None:
            raise error
        return session.finish_score(job, logprobs)

    def draft(self, calls: Sequence[DraftCall]) -> None:
        """A round's drafts after its lead: park them until the batch's parked work runs (in shared
        passes where another request drafts on the same member); the round then drafts as usual and
        finds them held by its sessions."""
        index = _local.index
        with self._cond:
            self._parked_drafts[index] = list(calls)
            self._state[index] = _PARKED
            self._pass_turn(index)
            self._wait_for_turn(index)
            _, error = self._outcomes.pop(index, (None, None))
        if error is not None:
            raise error

    # ------------------------------------------------------------------ turns
    def _wait_for_turn(self, index: int) -> None:
        """Wait (holding the condition) until round ``index`` is ready and has the turn; a thread about
        to wait first hands back its idle OpenMP team, which would slow the thread computing meanwhile."""
        if not (self._state[index] == _READY and self._turn == index):
            release_openmp_workers()
        while not (self._state[index] == _READY and self._turn == index):
            self._cond.wait()

    def _take_part(self, index: int, round_: Callable[[], None]) -> None:
        _local.pool, _local.index = self, index
        try:
            with self._cond:
                while self._turn != index:
                    self._cond.wait()
            round_()
        finally:
            _local.pool = None
            with self._cond:
                self._state[index] = _DONE
                self._pass_turn(index)

    def _pass_turn(self, index: int) -> None:
        """Give the turn to the next ready round after ``index``; when none is ready, run the parked
        passes and give it to the first round they release (called holding the condition)."""
        count = len(self._state)
        for step in range(1, count + 1):
            nxt = (index + step) % count
            if self._state[nxt] == _READY:
                self._turn = nxt
                self._cond.notify_all()
                return
        if self._parked or self._parked_drafts:
            released = sorted(set(self._parked) | set(self._parked_drafts))
            try:
                self._run_parked_drafts()
                began = time.perf_counter()
                try:
                    self._run_parked()
                finally:
                    self.seconds += time.perf_counter() - began
            except BaseException as error:  # whatever stopped the passes, no parked round waits forever
                for i in released:
                    self._outcomes.setdefault(i, (None, error))
                self._parked.clear()
                self._parked_drafts.clear()
                raise
            finally:
                for i in released:
                    self._state[i] = _READY
                self._turn = released[0]
                self._cond.notify_all()  # also when the passes raised: the released rounds must wake
        self._cond.notify_all()

    def _run_parked_drafts(self) -> None:
        """The parked draft calls, grouped by member, in shared passes (a lone call is left to its round)."""
        if not self._parked_drafts:
            return
        calls = [call for index in sorted(self._parked_drafts) for call in self._parked_drafts[index]]
        self._parked_drafts.clear()
        began = time.perf_counter()
        try:
            self.shared_drafts += draft_in_shared_passes(calls)
        finally:
            self.draft_seconds += time.perf_counter() - began

    def _run_parked(self) -> None:
        """One pass per member for the parked jobs on it (a lone job runs its session's own pass)."""
        groups: dict[int, list[int]] = {}
        for index, (session, _) in self._parked.items():
            groups.setdefault(id(session.member), []).append(index)
        for indices in groups.values():
            fed = [i for i in indices if self._parked[i][1].plan.ids]
            for i in indices:
                if i not in fed:
                    self._outcomes[i] = (None, None)
            if len(fed) == 1:
                session, job = self._parked[fed[0]]
                self._outcomes[fed[0]] = _attempt(lambda: session.scoring_pass(job))
            elif fed:
                member = self._parked[fed[0]][0].member
                try:
                    results = member.score_together([self._parked[i] for i in fed])
                except Exception as error:  # the pass's caches are half-updated: a fault of this member in each request
                    logger.warning("pooled scoring on %r failed (%s)", getattr(member, "name", member), type(error).__name__)
                    self._outcomes.update((i, (None, error)) for i in fed)
                    continue
                self.shared_passes += 1
                self._outcomes.update((i, (result, None)) for i, result in zip(fed, results))
        self._parked.clear()


def _attempt(work: Callable[[], Any]) -> tuple[Any, BaseException | None]:
    try:
        return work(), None
    except Exception as error:
        return None, error
