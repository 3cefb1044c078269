"""Continuous batching of rounds: concurrent requests on one ensemble run their rounds together.

Every caller that wants a round queues a ticket (FIFO). Whoever finds no batch running becomes the
leader: it takes up to ``max_batch`` tickets from the front of the queue, lets ``prepare`` share work
between them (batched drafting, :mod:`.shared_drafts`), runs the requests' rounds (one after another,
or with ``pool_scoring`` in turns, their scoring passes and later drafts pooled: :mod:`.pooled_scoring`), hands every
ticket its event or error and wakes the owners. Requests join and leave between rounds; each round
is still one request's own ``step()``, so results, usage, faults and timeouts stay per request.

Before taking a batch the leader waits briefly (``gather_s``) for the requests it served last time
to queue their next round, and for requests still being opened (``announce``/``arrived``) to queue
their first, so a batch is not cut short by threads still waking up or preparing their prompts.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence

from .openmp import release_openmp_workers
from .pooled_scoring import ScoringPool
from .results import SegmentEvent
from .rounds import EnsembleRequest


class _Ticket:
    __slots__ = ("request", "first", "finished", "event", "error")

    def __init__(self, request: EnsembleRequest, first: bool = False) -> None:
        self.request = request
        self.first = first  # the request's first round
        self.finished = False
        self.event: SegmentEvent | None = None
        self.error: BaseException | None = None

    def outcome(self) -> SegmentEvent | None:
        if self.error is not None:
            raise self.error
        return self.event


class RoundScheduler:
    def __init__(
        self, max_batch: int, prepare: Callable[[Sequence[EnsembleRequest]], None], gather_s: float = 0.05, pool_scoring: bool = True,
        pool_drafts: bool = True, settle_s: float = 0.01,
    ) -> None:
        """``pool_scoring``: a batch's rounds also share their scoring passes (:mod:`.pooled_scoring`);
        ``pool_drafts``: then also the drafts they add after their lead. ``settle_s``: a batch holding a
        first round waits until no request has been announced or queued for this long (within
        ``gather_s``): async callers open their requests one after another in the event loop's thread,
        and the first one's round reaches the queue before the next one is announced."""
        self.max_batch = max_batch
        self.prepare = prepare
        self.pool_scoring = pool_scoring
        self.pool_drafts = pool_drafts
        self.gather_s = gather_s
        self.settle_s = settle_s
        self._cond = threading.Condition()
        self._queue: deque[_Ticket] = deque()
        self._leading = False
        # Requests served last batch, or just opened: expected. Held weakly, so a request its owner
        # dropped is no longer waited for, and a new request never passes for a freed one (as ids can).
        self._returning: weakref.WeakSet[EnsembleRequest] = weakref.WeakSet()
        self._arriving = 0  # requests being opened now (validated, routed), expected soon
        self._opened: weakref.WeakSet[EnsembleRequest] = weakref.WeakSet()  # opened, first round not queued yet
        self._last_arrival = 0.0  # monotonic time of the last announcement or queued first round
        self.batches = 0  # batches run (for tests and benchmarks)
        self.batched_rounds = 0  # rounds that ran in a batch of two or more
        self.shared_scoring_passes = 0  # pooled scoring passes that served two or more requests
        self.pooled_scoring_seconds = 0.0  # time in pooled scoring passes (part of step_seconds)
        self.shared_round_drafts = 0  # members whose drafts inside rounds ran in shared passes, per wave
        self.pooled_drafting_seconds = 0.0  # time in those pooled drafts (part of step_seconds)
        self.prepare_seconds = 0.0  # time in ``prepare`` (shared drafting), for benchmarks
        self.step_seconds = 0.0  # time in the requests' own rounds

    def announce(self) -> None:
        """A request is being opened: a leader taking a batch meanwhile waits (up to ``gather_s``) for its
        first round. Why: requests started together (``.batch``, a burst at the server) reach their
        first round tens of milliseconds apart, and without this the first ran its first round alone."""
        with self._cond:
            self._arriving += 1
            self._last_arrival = time.monotonic()

    def arrived(self, request: EnsembleRequest | None) -> None:
        """The request announced is open (``None``: opening failed); its first round is expected."""
        with self._cond:
            self._arriving -= 1
            if request is not None:
                self._returning.add(request)
                self._opened.add(request)
            self._cond.notify_all()

    def run(self, request: EnsembleRequest) -> SegmentEvent | None:
        """One round of ``request``, possibly alongside other requests' rounds."""
        with self._cond:
            ticket = _Ticket(request, first=request in self._opened)
            if ticket.first:
                self._opened.discard(request)
                self._last_arrival = time.monotonic()
            self._queue.append(ticket)
            self._returning.discard(request)
            self._cond.notify_all()
        try:
            while True:
                with self._cond:
                    if not ticket.finished and self._leading:
                        release_openmp_workers()  # this thread waits: its idle OpenMP team would slow the leader's
                    while not ticket.finished and self._leading:
                        self._cond.wait()
                    if ticket.finished:
                        return ticket.outcome()
                    self._leading = True
                    batch = self._take_batch()
                try:
                    self._run(batch)
                finally:
                    with self._cond:
                        self._leading = False
                        self._cond.notify_all()
        except BaseException:
            self._withdraw(ticket)
            raise
        finally:
            release_openmp_workers()  # the round is over: whoever computes next, in any thread, gets the CPUs

    def _take_batch(self) -> list[_Ticket]:
        """Up to ``max_batch`` tickets from the front of the queue (called holding the condition)."""
        deadline = time.monotonic() + self.gather_s
        while len(self._queue) < self.max_batch:
            now = time.monotonic()
            if now >= deadline:
                break
            if self._returning or self._arriving:
                self._cond.wait(deadline - now)
            elif any(t.first for t in self._queue) and now < self._last_arrival + self.settle_s:
                self._cond.wait(min(deadline, self._last_arrival + self.settle_s) - now)  # requests may still be opening
            else:
                break
        self._returning.clear()  # whoever missed this batch is not waited for again (an abandoned stream included)
        self._opened.clear()
        batch: list[_Ticket] = []
        later: list[_Ticket] = []
        while self._queue and len(batch) < self.max_batch:
            ticket = self._queue.popleft()
            # a request asked for two rounds at once (two threads on one stream): one per batch, in order
            (later if any(t.request is ticket.request for t in batch) else batch).append(ticket)
        self._queue.extendleft(reversed(later))
        return batch

    def _run(self, batch: list[_Ticket]) -> None:
        live = [t for t in batch if not t.request.done]
        began = time.perf_counter()
        if len(live) > 1:
            self.prepare([t.request for t in live])
            self.batched_rounds += len(live)
        self.batches += 1
        prepared = time.perf_counter()
        self.prepare_seconds += prepared - began
        try:
            if self.pool_scoring and len(live) > 1:
                self._pooled_steps(batch)
            else:
                self._steps(batch)
        finally:
            self.step_seconds += time.perf_counter() - prepared

    def _pooled_steps(self, batch: list[_Ticket]) -> None:
        """The batch's rounds in turns, each in its own thread, their scoring passes pooled."""

        def round_of(ticket: _Ticket) -> Callable[[], None]:
            def run() -> None:
                try:
                    ticket.event = ticket.request.step()
                except BaseException as error:  # kept for its owner, as in a lone round
                    ticket.error = error
                finally:
                    self._finish([ticket])  # each round hands its own outcome over when it ends

            return run

        pool = ScoringPool(len(batch), pool_drafts=self.pool_drafts)
        release_openmp_workers()  # the rounds compute in threads of their own while this one waits
        try:
            pool.run([round_of(t) for t in batch])
        finally:
            self.shared_scoring_passes += pool.shared_passes
            self.pooled_scoring_seconds += pool.seconds
            self.shared_round_drafts += pool.shared_drafts
            self.pooled_drafting_seconds += pool.draft_seconds
            with self._cond:  # rounds that never started (a failed thread start) run in a later batch
                self._queue.extendleft(reversed(batch[pool.started :]))

    def _steps(self, batch: list[_Ticket]) -> None:
        for index, ticket in enumerate(batch):
            try:
                ticket.event = ticket.request.step()
            except Exception as error:
                ticket.error = error
            except BaseException as error:  # an interrupt in the leader's thread: this round is over
                ticket.error = error
                self._finish(batch[: index + 1])
                with self._cond:
                    self._queue.extendleft(reversed(batch[index + 1 :]))  # the rest run in a later batch
                raise
        self._finish(batch)

    def _finish(self, tickets: list[_Ticket]) -> None:
        with self._cond:
            for ticket in tickets:
                ticket.finished = True
                if ticket.error is None and ticket.event is not None and not ticket.request.done:
                    self._returning.add(ticket.request)
            self._cond.notify_all()

    def _withdraw(self, ticket: _Ticket) -> None:
        """The owner stopped waiting (an interrupt): drop its queued round, or end a round in flight."""
        with self._cond:
            if ticket in self._queue:
                self._queue.remove(ticket)
                return
        if not ticket.finished:
            ticket.request.close()

    def stats(self) -> dict[str, float]:
        return {"batches": self.batches, "batched_rounds": self.batched_rounds, "shared_scoring_passes": self.shared_scoring_passes,
                "shared_round_drafts": self.shared_round_drafts, "prepare_seconds": self.prepare_seconds, "step_seconds": self.step_seconds,
                "pooled_scoring_seconds": self.pooled_scoring_seconds, "pooled_drafting_seconds": self.pooled_drafting_seconds}
