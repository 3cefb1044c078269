"""One request's round loop: draft -> judge -> accept -> finish.

The request runs members (drafting, scoring, accepting, with fault handling) and keeps the response;
every decision about trust and winners is the :class:`~specfuse_core.judge.Judge`'s. Written as a step function (one call = one round = one accepted segment) so the sync stream, the
async stream and ``generate`` all drive the same code.

A member that raises (any ``Exception``) is taken out of the request and reported as a
:class:`MemberFault`; the request goes on with the others (see docs/reliability.md).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .backend import Candidate, Draft, MemberBackend, MemberSession, Sampling
from .config import EnsembleConfig
from .errors import AllMembersFailedError, ContextWindowExceededError, NoCandidatesError, UnsupportedFeatureError, UnsupportedSchemaError
from .judge import Judge, RoundVerdict, merge_drafts
from .messages import Conversation, last_user_text, without_question
from .output import FinalOutput, OutputSpec
from .pooled_scoring import current_pool
from .results import FaultPhase, GenerationResult, MemberFault, SegmentEvent, Trace, Usage
from .scoring import HedgeWeights
from .shared_drafts import can_share
from .text_align import end_of_turn_holdback, end_of_turn_position, stop_holdback, stop_position

logger = logging.getLogger(__name__)


class EnsembleRequest:
    def __init__(
        self,
        members: Sequence[MemberBackend],
        conversation: Conversation,
        config: EnsembleConfig,
        hedge: HedgeWeights,
        output: OutputSpec | None = None,
        counter: str | None = None,
    ) -> None:
        """``counter``: the member whose tokens count the output length and usage (default: the first);
        if it sits the request out, the first member that started counts."""
        self.config = config
        self.output = output
        self.final_output: FinalOutput | None = None
        self.verify_only: set[str] = set()  # members that cannot draft under this request's grammar
        self._pool: ThreadPoolExecutor | None = None  # set once the sessions are known
        self.members = {m.name: m for m in members}
        self.hedge = hedge
        self.judge = Judge(config, hedge, [m.name for m in members], last_user_text(conversation))
        self.trace = Trace()
        self.reserve = config.round_reserve
        self.deadline = None if config.timeout_s is None else time.monotonic() + config.timeout_s
        self.rounds = 0
        self._gate_check: tuple[str, float] | None = None  # this round's second opinion (member, mean or minimum token log-prob)
        self.response = ""
        self.response_tokens = 0  # the response's length in the counting member's tokens (gate_check_tokens)
        self.faulted: set[str] = set()
        self._round_faults: list[MemberFault] = []
        self.sessions: dict[str, MemberSession] = {}
        self.contrast: dict[str, MemberSession] = {}  # verifier -> its session without the question (contrast_weight)
        for index, member in enumerate(members):
            seed = None if config.seed is None else config.seed + index
            sampling = Sampling(config.temperature, config.top_p, config.top_k, seed, config.no_repeat_ngram_size)
            try:
                self.sessions[member.name] = member.start(conversation, sampling, reserved=self.reserve)
            except ContextWindowExceededError as error:
                if config.context_overflow != "skip_member":
                    raise
                self.trace.skipped[member.name] = str(error)
            except Exception as error:  # a broken member must not take the request down with it
                self._record_fault(member.name, "start", error)
        self._constrain()
        if self.judge.wants_contrast:
            self.contrast = self._start_contrast(members, conversation)
        if not self.sessions:
            if self.trace.faults:
                raise AllMembersFailedError(self.trace.faults, "", self.trace.skipped)
            raise NoCandidatesError(
                "every member sat this request out: " + "; ".join(self.trace.skipped.values())
            )
        # output length is counted in this member's tokens
        self.counter = counter if counter in self.sessions else next(iter(self.sessions))
        # Plain-format members end their turn with text ("\nUser:"); found on the accepted response, so
        # also when split across segments (each member's draft only sees its own segment).
        self.end_texts = tuple(dict.fromkeys(t for n in self.sessions for t in getattr(self.members[n], "end_of_turn_texts", ())))
        self.active: list[str] = list(self.sessions)
        self.prompt_tokens = self.sessions[self.counter].prompt_tokens
        self.released = 0
        self.finish_reason: str | None = None
        self._closed = False
        self._lock = threading.Lock()
        devices = {str(self.members[n].device) for n in self.sessions}
        self._pool = ThreadPoolExecutor(len(devices)) if len(devices) > 1 else None

    def _start_contrast(self, members: Sequence[MemberBackend], conversation: Conversation) -> dict[str, MemberSession]:
        """A second session per verifying member, on the conversation without its question, for the
        context-free contrast. Greedy and unconstrained: it only scores. A member that cannot start one
        is faulted like any member that fails to start."""
        free = without_question(conversation)
        sessions: dict[str, MemberSession] = {}
        verifiers = self.judge.verifiers(list(self.sessions))
        for member in members:
            name = member.name
            if name not in verifiers:
                continue
            try:
                sessions[name] = member.start(free, Sampling(), reserved=self.reserve)
            except Exception as error:
                self._record_fault(name, "start", error)
                self.sessions.pop(name).close()
        return sessions

    def _constrain(self) -> None:
        """Give every session the request's grammar. A format the engine refuses fails the request now
        (it is the caller's); an engine failure in one member is that member's fault; a member that
        cannot mask its drafts (text-only, remote) only verifies."""
        fmt = self.output.fmt if self.output is not None else None
        if fmt is None:
            return
        for name in list(self.sessions):
            try:
                if not self.sessions[name].constrain(fmt):
                    self.verify_only.add(name)
            except UnsupportedSchemaError:
                self._release()
                raise
            except Exception as error:
                self._record_fault(name, "start", error)
                self.sessions.pop(name).close()
        if self.sessions and not set(self.sessions) - self.verify_only:
            self._release()
            raise UnsupportedFeatureError(
                "no member of this ensemble can draft under a response format or tools (text-only members "
                "only verify such requests): add a local member"
            )

    # ------------------------------------------------------------------ public
    @property
    def done(self) -> bool:
        return self.finish_reason is not None or self._closed

    def step(self) -> SegmentEvent | None:
        """Run one round; None once the request has finished, failed or was closed."""
        with self._lock:
            if self.done:
                return None
            try:
                if self._expired():  # e.g. the caller paused, or waited for other requests' rounds
                    return self._timed_out()
                return self._round()
            except BaseException:
                self._closed = True  # a failed request is over: no later step may run on freed caches
                self._release()
                raise
            finally:
                if self.done:
                    self._release()

    def close(self) -> None:
        """Stop the request (also from another thread); caches are freed once no round is running."""
        self._closed = True
        if self._lock.acquire(blocking=False):
            try:
                self._release()
            finally:
                self._lock.release()

    def result(self) -> GenerationResult:
        output = self.final_output or FinalOutput()
        return GenerationResult(
            text=self.response,
            finish_reason=self.finish_reason or "length",
            usage=self.usage(),
            trace=self.trace,
            parsed=output.parsed,
            tool_calls=output.tool_calls,
        )

    def usage(self) -> Usage:
        completion = self._count("count_tokens", self.response) if self.response else 0
        members = {name: session.counters.model_copy() for name, session in self.sessions.items()}
        for name, session in self.contrast.items():  # its context-free scoring is this member's work too
            usage = members[name]
            for field in ("verified_tokens", "forward_calls", "shared_forward_calls"):
                setattr(usage, field, getattr(usage, field) + getattr(session.counters, field))
        return Usage(
            prompt_tokens=self.prompt_tokens,
            completion_tokens=completion,
            total_tokens=self.prompt_tokens + completion,
            members=members,
        )

    # ------------------------------------------------------------------ the round
    def _round(self) -> SegmentEvent:
        self.rounds += 1
        self._gate_check = None
        started = time.perf_counter()
        drafts, gated = self._draft_round()
        drafted = time.perf_counter()
        verdict = self._judge(drafts, gated)
        verified = time.perf_counter()
        finish = self._accept(verdict)
        exited = self._model_exit() if finish is None else []

        round_trace = verdict.trace(self.rounds, drafts, exited, gated)
        if self._gate_check is not None:
            round_trace.gate_check = {self._gate_check[0]: self._gate_check[1]}
        round_trace.draft_seconds = drafted - started
        round_trace.verify_seconds = verified - drafted
        self.trace.rounds.append(round_trace)
        self.trace.wins[verdict.winner_member] = self.trace.wins.get(verdict.winner_member, 0) + 1
        self.trace.final_weights = self.judge.weights(list(self.sessions))
        if finish is not None:
            self._check_output()
            self.finish_reason = finish
        return self._event(verdict, list(drafts), finish)

    def _check_output(self) -> None:
        """The final text parses and validates (or is valid tool calls), else the request fails with
        ``StructuredOutputError``: a constrained request never returns unchecked output."""
        if self.output is not None:
            self.final_output = self.output.finish(self.response)

    def _judge(self, drafts: dict[str, Draft], gated: bool) -> RoundVerdict:
        """Merge the drafts into candidates, let the verifiers score them if a vote is needed, and
        hand everything to the judge."""
        drafters = list(drafts)
        single = len(drafters) == 1 and not self._verifiers_besides(drafters)
        candidates, proposers = merge_drafts(drafts)
        verifiers = self._verifiers()
        scored: dict[str, list[float]] = {}
        free: dict[str, list[float]] = {}
        if self.judge.needs_vote(gated, single, candidates):
            scoring = self.judge.scoring_candidates(candidates)

            def score(name: str) -> tuple[list[float], list[float] | None]:
                statistic = self.config.vote_statistic
                conditional = self.sessions[name].score(self.response, scoring, statistic=statistic)
                contrast = self.contrast.get(name) if self.judge.contrast_in(self.rounds) else None
                return conditional, None if contrast is None else contrast.score(self.response, scoring, statistic=statistic)

            both = self._each("score", verifiers, score)
            scored = {name: pair[0] for name, pair in both.items()}
            free = {name: pair[1] for name, pair in both.items() if pair[1] is not None}
        # nothing voted (the lead was sure, one candidate, or every verifier failed): the earliest candidate wins
        return self.judge.decide(candidates, proposers, drafts, scored, verifiers if not single else drafters, self.response, free)

    def _accept(self, verdict: RoundVerdict) -> str | None:
        """Append the winner for every member, apply the finish rules; returns the finish reason."""
        winner, proposers = verdict.winner, verdict.proposers
        response = self.response + verdict.chosen.text
        scored, free = verdict.scored, verdict.context_free

        def accept(name: str) -> None:
            self.sessions[name].accept(response, winner if name in scored else None, own_draft=name in proposers[winner])
            if name in self.contrast and self.judge.contrast_in(self.rounds + 1):
                self.contrast[name].accept(response, winner if name in free else None, own_draft=False)

        self._each("accept", self._healthy(), accept)
        if self.contrast and self.judge.contrast_in(self.rounds) and not self.judge.contrast_in(self.rounds + 1):  # window over: free them
            for session in self.contrast.values():
                session.close()
        finish, response = self._finish_checks(verdict.chosen, response)
        if finish is None and self._expired():
            finish = "timeout"
        self.response = response
        return finish

    def _event(self, verdict: RoundVerdict, drafters: list[str], finish: str | None) -> SegmentEvent:
        """The round's segment: the text that may be shown now (a suffix that could still become a stop
        string or an end of turn is held back until the next round or the end)."""
        held = max(stop_holdback(self.response, self.config.stop), end_of_turn_holdback(self.response, self.end_texts))
        visible_end = len(self.response) if finish else len(self.response) - held
        text = self.response[self.released : max(self.released, visible_end)]
        self.released += len(text)
        faults, self._round_faults = self._round_faults, []  # this round's (and the first round: start's)
        return SegmentEvent(
            text=text,
            segment=verdict.chosen.text,
            round=self.rounds,
            member=verdict.winner_member,
            proposers=list(verdict.proposers[verdict.winner]),
            scores=verdict.member_scores(),
            active_members=drafters,
            finish_reason=finish,
            faults=faults,
        )

    def _draft_round(self) -> tuple[dict[str, Draft], bool]:
        """This round's drafts, and whether the lead member's alone settle it (confidence gating).

        Under gating the lead drafts first; if its own mean log-prob of its segment reaches
        ``gate_threshold`` the others neither draft nor vote this round (they catch up on the accepted
        text in their next forward pass). Otherwise everyone drafts, reserve members too, the lead's
        draft included as is."""
        config = self.config
        drafts: dict[str, Draft] = {}
        while not drafts:  # members that fail are taken out; the rest draft (raises once nobody is left)
            drafting, align = self._drafting_plan()

            def draft(name: str) -> Draft:
                return self.sessions[name].draft(self.response, config.segment_tokens, align=align)

            lead = self.judge.lead(drafting, self._reserves(drafting))
            if lead is not None:
                drafts = self._each("draft", [lead], draft)
                if self.judge.confident(drafts.get(lead)) and self.judge.seconded(self._second_opinion(lead, drafts[lead])):
                    return drafts, True
                others = self._drafters()
                later = [n for n in others + self._reserves(others) if n != lead]
                self._pool_drafts(later, align)
                drafts.update(self._each("draft", later, draft))
                drafts = {n: drafts[n] for n in self.sessions if n in drafts}  # member order
            else:
                drafts = self._each("draft", drafting, draft)
        return drafts, False

    def _pool_drafts(self, names: list[str], align: bool) -> None:
        """In a batch of rounds (:mod:`.pooled_scoring`), run these drafts in passes shared with the other
        requests' before drafting: the sessions then hold them, and ``draft`` returns them as made alone."""
        pool = current_pool()
        if pool is None or not pool.pool_drafts:
            return
        calls = [(self.members[n], self.sessions[n], self.response, self.config.segment_tokens, align) for n in names]
        if any(can_share(member) for member, *_ in calls):
            pool.draft(calls)

    def _second_opinion(self, lead: str, draft: Draft) -> float | None:
        """The checking member's mean (or, by ``gate_check_statistic``, minimum) token log-prob of the
        lead's confident segment (``gate_check_threshold``); None when there is no check (off, nobody
        to ask, nothing drafted, or the checker failed)."""
        checker = self.judge.second_opinion(lead, self._verifiers(), self.rounds, self.response_tokens)
        if checker is None or not (draft.text or draft.finished):
            return None
        candidate = self.judge.scoring_candidates([Candidate(draft.text, draft.finished)])
        statistic = self.config.gate_check_statistic
        scores = self._each("score", [checker], lambda name: self.sessions[name].score(self.response, candidate, statistic=statistic))
        if checker not in scores:
            return None
        self._gate_check = (checker, float(scores[checker][0]))
        return self._gate_check[1]

    def _drafting_plan(self) -> tuple[list[str], bool]:
        """Members that draft this round, and whether their drafts are cut to word boundaries."""
        drafting = self._drafters()
        return drafting, len(drafting) > 1 or bool(self._verifiers_besides(drafting))

    def planned_drafts(self) -> list[tuple[MemberBackend, MemberSession, str, int, bool]]:
        """The draft calls the next round starts with, as ``(member, session, response, max_tokens,
        align)``: the lead's alone under gating, else every drafter's. Lets the engine run them for
        several requests in shared passes before the rounds ask (see :mod:`.shared_drafts`)."""
        if self.done or self._expired():
            return []
        drafting, align = self._drafting_plan()
        lead = self.judge.lead(drafting, self._reserves(drafting))
        names = [lead] if lead is not None else drafting
        return [(self.members[n], self.sessions[n], self.response, self.config.segment_tokens, align) for n in names]

    def _drafters(self) -> list[str]:
        drafters = self.judge.drafters(self.active)
        if self.verify_only:  # under a grammar, only members that can mask their drafts propose
            drafters = [n for n in drafters if n not in self.verify_only] or [n for n in self._healthy() if n not in self.verify_only]
            if not drafters:
                raise AllMembersFailedError(self.trace.faults, self.response, self.trace.skipped)
        return drafters

    def _reserves(self, drafting: list[str]) -> list[str]:
        """Reserve members that may join this round's drafting (not under a grammar they cannot follow)."""
        return [n for n in self.judge.reserves(self.active, drafting) if n not in self.verify_only]

    def _verifiers_besides(self, drafters: list[str]) -> list[str]:
        return [n for n in self._verifiers() if n not in drafters]

    def _verifiers(self) -> list[str]:
        """Members that score candidates: active (or, with ``exited_members_verify``, every healthy
        member), less those whose role is draft-only (unless that would leave no verifier)."""
        return self.judge.verifiers(self._healthy() if self.config.exited_members_verify else self.active)

    def _healthy(self) -> list[str]:
        """Members still in the request (exited ones included), in member order."""
        return [name for name in self.sessions if name not in self.faulted]

    def _finish_checks(self, chosen: Candidate, response: str) -> tuple[str | None, str]:
        """The finish reason and the response after end-of-turn texts, stop strings and the length cap;
        records the response's length in tokens on the way (``gate_check_tokens`` reads it)."""
        config = self.config
        finish = "stop" if chosen.finished else None
        if self.end_texts:
            start = max(0, len(self.response) - max(map(len, self.end_texts)) + 1)
            cut = end_of_turn_position(response, self.end_texts, start, floor=self.released)
            if cut is not None:
                response, finish = response[:cut], "stop"
        if config.stop:
            longest = max(len(s) for s in config.stop)
            cut = stop_position(response, config.stop, start=max(0, len(self.response) - longest + 1))
            if cut is not None:
                response, finish = response[:cut], "stop_sequence"
        length = self._count("count_tokens", response)
        self.response_tokens = min(length, config.max_new_tokens)
        if length > config.max_new_tokens:  # cut: whatever ended the turn lies beyond the limit
            response, finish = self._count("truncate", response, config.max_new_tokens), "length"
        elif length == config.max_new_tokens:
            finish = finish or "length"
        if finish is None and self.rounds >= config.round_cap:
            finish = "length"
        if finish is None and any(
            s.context_tokens + self.reserve >= self.members[n].context_window for n, s in self.sessions.items() if n in self._verifiers()
        ):
            finish = "length"
        return finish, response

    def _model_exit(self) -> list[str]:
        leaving = self.judge.exits(self.active, self.rounds)
        self.active = [n for n in self.active if n not in leaving]
        self.trace.exited.extend(leaving)
        return leaving

    # ------------------------------------------------------------------ faults and time
    def _each(self, phase: FaultPhase, names: list[str], work: Callable[[str], Any]) -> dict[str, Any]:
        """``work(name)`` for each member; those that raise are taken out (see :meth:`_fault`), the
        others' results come back in member order."""

        def attempt(name: str) -> tuple[Any, Exception | None]:
            try:
                return work(name), None
            except Exception as error:  # BaseException (KeyboardInterrupt, cancellation) still ends the request
                return None, error

        results: dict[str, Any] = {}
        for name, (value, error) in zip(names, self._map(names, attempt)):
            if error is None:
                results[name] = value
            else:
                self._fault(name, phase, error)
        return results

    def _record_fault(self, name: str, phase: FaultPhase, error: Exception) -> MemberFault:
        fault = MemberFault(member=name, phase=phase, round=self.rounds, error=f"{type(error).__name__}: {error}")
        self.trace.faults.append(fault)
        self._round_faults.append(fault)
        self.faulted.add(name)
        # Only the exception type at WARNING: its message may quote the prompt or output.
        logger.warning("member %r failed (%s, round %d, %s); the request goes on without it", name, phase, self.rounds, type(error).__name__)
        return fault

    def _fault(self, name: str, phase: FaultPhase, error: Exception) -> None:
        """Take a member out of this request: it stops drafting and verifying and its session is closed
        (caches freed, never reused half-updated). Raises AllMembersFailedError when nobody is left."""
        self._record_fault(name, phase, error)
        self.active = [n for n in self.active if n != name]
        for session in (self.sessions[name], self.contrast.get(name)):  # kept (closed) for their usage counters
            try:
                if session is not None:
                    session.close()
            except Exception:
                logger.debug("closing a session of failed member %r raised too", name, exc_info=True)
        healthy = self._healthy()
        if not healthy:
            raise AllMembersFailedError(self.trace.faults, self.response, self.trace.skipped)
        if not self.active:  # only exited members are left: they come back rather than end the request
            self.active = healthy

    def _count(self, method: str, *args: Any) -> Any:
        """``count_tokens`` / ``truncate`` on the counting member. A failed member still counts (only its
        tokenizer is used); if counting itself raises, the next healthy member counts from then on."""
        while True:
            try:
                return getattr(self.sessions[self.counter], method)(*args)
            except Exception as error:
                if self.counter not in self.faulted:
                    self._fault(self.counter, "accept", error)
                self.counter = self._healthy()[0]

    def _expired(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def _timed_out(self) -> SegmentEvent:
        """End a request whose time ran out between rounds, releasing any held-back text."""
        self._check_output()
        self.finish_reason = "timeout"
        text = self.response[self.released :]
        self.released += len(text)
        return SegmentEvent(
            text=text, segment="", round=self.rounds, member="", proposers=[], scores={},
            active_members=list(self.active), finish_reason="timeout",
        )

    # ------------------------------------------------------------------ helpers
    def _map(self, names, work):
        if self._pool is None:
            return [work(name) for name in names]
        return list(self._pool.map(work, names))

    def _release(self) -> None:
        for session in [*self.sessions.values(), *self.contrast.values()]:
            session.close()
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None
