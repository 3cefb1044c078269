"""One request's round loop: draft, align, verify, combine, accept, exit, stop.

Written as a step function (one call = one round = one accepted segment) so the sync stream, the
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

import numpy as np

from .config import EnsembleConfig
from .errors import AllMembersFailedError, ContextWindowExceededError, NoCandidatesError
from .member import Candidate, Draft, Member, MemberSession
from .messages import Conversation, last_user_text
from .results import (
    CandidateTrace,
    FaultPhase,
    GenerationResult,
    MemberFault,
    MemberUsage,
    RoundTrace,
    SegmentEvent,
    Trace,
    Usage,
)
from .sampling import TokenChooser
from .scoring import HedgeWeights, combine, consensus_shares, members_to_exit, normalize_scores, pick_winner
from .text_align import end_of_turn_holdback, end_of_turn_position, repetition_share, stop_holdback, stop_position

logger = logging.getLogger(__name__)


class EnsembleRequest:
    def __init__(
        self,
        members: Sequence[Member],
        conversation: Conversation,
        config: EnsembleConfig,
        hedge: HedgeWeights,
    ) -> None:
        self.config = config
        self.members = {m.name: m for m in members}
        self.hedge = hedge
        self.trace = Trace()
        self.reserve = config.round_reserve
        self.deadline = None if config.timeout_s is None else time.monotonic() + config.timeout_s
        self.rounds = 0
        self.response = ""
        self.faulted: set[str] = set()
        self._round_faults: list[MemberFault] = []
        self.sessions: dict[str, MemberSession] = {}
        for index, member in enumerate(members):
            seed = None if config.seed is None else config.seed + index
            chooser = TokenChooser(config.temperature, config.top_p, config.top_k, seed)
            try:
                self.sessions[member.name] = member.start(conversation, chooser, reserved=self.reserve)
            except ContextWindowExceededError as error:
                if config.context_overflow != "skip_member":
                    raise
                self.trace.skipped[member.name] = str(error)
            except Exception as error:  # a broken member must not take the request down with it
                self._record_fault(member.name, "start", error)
        if not self.sessions:
            if self.trace.faults:
                raise AllMembersFailedError(self.trace.faults, "", self.trace.skipped)
            raise NoCandidatesError(
                "every member sat this request out: " + "; ".join(self.trace.skipped.values())
            )
        self.counter = next(iter(self.sessions))  # output length is counted in this member's tokens
        # Plain-format members end their turn with text ("\nUser:"); found on the accepted response, so
        # also when split across segments (each member's draft only sees its own segment).
        self.end_texts = tuple(dict.fromkeys(t for n in self.sessions for t in getattr(self.members[n], "end_of_turn_texts", ())))
        self.active: list[str] = list(self.sessions)
        self.quality = {name: 0.0 for name in self.active}
        self.history = last_user_text(conversation)
        self.prompt_tokens = self.sessions[self.counter].prompt_tokens
        self.released = 0
        self.finish_reason: str | None = None
        self._closed = False
        self._lock = threading.Lock()
        devices = {str(self.members[n].device) for n in self.sessions}
        self._pool = ThreadPoolExecutor(len(devices)) if len(devices) > 1 else None

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
        return GenerationResult(
            text=self.response,
            finish_reason=self.finish_reason or "length",
            usage=self.usage(),
            trace=self.trace,
        )

    def usage(self) -> Usage:
        completion = self._count("count_tokens", self.response) if self.response else 0
        members = {
            name: MemberUsage(**vars(session.counters)) for name, session in self.sessions.items()
        }
        return Usage(
            prompt_tokens=self.prompt_tokens,
            completion_tokens=completion,
            total_tokens=self.prompt_tokens + completion,
            members=members,
        )

    # ------------------------------------------------------------------ the round
    def _round(self) -> SegmentEvent:
        config = self.config
        self.rounds += 1

        started = time.perf_counter()
        drafts, gated = self._draft_round()
        drafters = list(drafts)
        single = len(drafters) == 1 and not self._verifiers_besides(drafters)
        drafted = time.perf_counter()
        candidates, proposers = self._candidates(drafters, list(drafts.values()))

        verifiers = self._verifiers()
        weights = self._weights(verifiers if not single else drafters)
        repetition = np.zeros(len(candidates))
        consensus = np.zeros(len(candidates))
        scored: dict[str, list[float]] = {}
        if not (gated or single or len(candidates) == 1):
            scoring = self._scoring_candidates(candidates)
            scored = self._each("score", verifiers, lambda v: self.sessions[v].score(self.response, scoring))
        if not scored:  # nothing to compare, the lead was sure, or every verifier failed: the earliest candidate wins
            normalized: dict[str, np.ndarray] = {}
            combined = np.ones(len(candidates)) / len(candidates)
            winner = 0
        else:
            normalized = {v: normalize_scores(s, config.normalization, config.score_temperature) for v, s in scored.items()}
            combined = combine(normalized, weights, proposers, config.exclude_self_vote)
            if config.repetition_penalty:
                repetition = np.array([repetition_share(c.text, self.history + "\n" + self.response) for c in candidates])
                combined = combined - config.repetition_penalty * repetition
            if config.consensus_weight:
                consensus = consensus_shares([c.text for c in candidates], proposers, {n: d.text for n, d in drafts.items()})
                combined = combined + config.consensus_weight * consensus
            winner = pick_winner(combined)
            if config.weighting == "hedge":
                peer_scores = combine(normalized, weights, proposers, exclude_self_vote=True)
                self.hedge.update(peer_scores, {m: i for i, names in enumerate(proposers) for m in names})
        verified = time.perf_counter()

        for index, names in enumerate(proposers):
            for name in names:
                self.quality[name] += float(combined[index])

        chosen = candidates[winner]
        response = self.response + chosen.text
        self._each(
            "accept",
            self._healthy(),
            lambda name: self.sessions[name].accept(response, winner if name in scored else None, own_draft=name in proposers[winner]),
        )
        finish, response = self._finish_checks(chosen, response)
        if finish is None and self._expired():
            finish = "timeout"
        self.response = response

        exited = self._model_exit() if finish is None else []
        round_trace = self._round_trace(
            candidates, proposers, scored, normalized, repetition, combined, winner, weights, drafters, list(scored), exited
        )
        for index, candidate in enumerate(round_trace.candidates):
            candidate.consensus = float(consensus[index])
            candidate.draft_logprobs = {n: drafts[n].mean_logprob for n in proposers[index] if drafts[n].mean_logprob is not None}
        round_trace.gated = gated
        round_trace.draft_seconds = drafted - started
        round_trace.verify_seconds = verified - drafted
        self.trace.rounds.append(round_trace)
        self.trace.wins[round_trace.winner_member] = self.trace.wins.get(round_trace.winner_member, 0) + 1
        self.trace.final_weights = self._weights(list(self.sessions))
        if finish is not None:
            self.finish_reason = finish

        held = max(stop_holdback(self.response, config.stop), end_of_turn_holdback(self.response, self.end_texts))
        visible_end = len(self.response) if finish else len(self.response) - held
        text = self.response[self.released : max(self.released, visible_end)]
        self.released += len(text)
        faults, self._round_faults = self._round_faults, []  # this round's (and the first round: start's)
        return SegmentEvent(
            text=text,
            segment=chosen.text,
            round=self.rounds,
            member=proposers[winner][0],
            proposers=list(proposers[winner]),
            scores={name: float(combined[i]) for i, names in enumerate(proposers) for name in names},
            active_members=drafters,
            finish_reason=finish,
            faults=faults,
        )

    def _draft_round(self) -> tuple[dict[str, Draft], bool]:
        """This round's drafts, and whether the lead member's alone settle it (confidence gating).

        Under gating the lead drafts first; if its own mean log-prob of its segment reaches
        ``gate_threshold`` the others neither draft nor vote this round (they catch up on the accepted
        text in their next forward pass). Otherwise everyone drafts, the lead's draft included as is."""
        config = self.config
        drafts: dict[str, Draft] = {}
        while not drafts:  # members that fail are taken out; the rest draft (raises once nobody is left)
            drafting = self._drafters()
            align = len(drafting) > 1 or bool(self._verifiers_besides(drafting))

            def draft(name: str) -> Draft:
                return self.sessions[name].draft(self.response, config.segment_tokens, align=align)

            lead = self._lead(drafting)
            if lead is not None:
                drafts = self._each("draft", [lead], draft)
                confidence = drafts[lead].mean_logprob if lead in drafts else None
                if confidence is not None and confidence >= config.gate_threshold:
                    return drafts, True
                drafts.update(self._each("draft", [n for n in self._drafters() if n != lead], draft))
                drafts = {n: drafts[n] for n in self.sessions if n in drafts}  # member order
            else:
                drafts = self._each("draft", drafting, draft)
        return drafts, False

    def _lead(self, drafting: list[str]) -> str | None:
        """The gating lead, when gating is on and the lead is still drafting alongside others."""
        config = self.config
        if config.gate_threshold is None or len(drafting) < 2:
            return None
        lead = config.lead_member or max(drafting, key=lambda n: config.member_weights.get(n, 1.0))
        return lead if lead in drafting else None

    def _drafters(self) -> list[str]:
        """Active members allowed to draft (all of them if roles would leave nobody)."""
        roles = self.config.roles
        drafting = [n for n in self.active if roles.get(n, "both") != "verify"]
        return drafting or list(self.active)

    def _verifiers_besides(self, drafters: list[str]) -> list[str]:
        return [n for n in self._verifiers() if n not in drafters]

    def _scoring_candidates(self, candidates: list[Candidate]) -> list[Candidate]:
        """What verifiers score. Under ``end_of_turn_scoring="text_only"`` a finished candidate with text is
        scored on its text alone, like an unfinished one (an empty finished candidate keeps its end token)."""
        if self.config.end_of_turn_scoring == "token":
            return candidates
        return [Candidate(c.text, c.finished and not c.text) for c in candidates]

    def _candidates(self, drafters: list[str], drafts: list[Draft]) -> tuple[list[Candidate], list[list[str]]]:
        """Distinct candidates in member order, each with every member that proposed it."""
        index: dict[Candidate, int] = {}
        candidates: list[Candidate] = []
        proposers: list[list[str]] = []
        for name, draft in zip(drafters, drafts):
            key = Candidate(draft.text, draft.finished)
            if not key.text and not key.finished:
                continue  # nothing to propose this round (e.g. only special tokens)
            if key not in index:
                index[key] = len(candidates)
                candidates.append(key)
                proposers.append([])
            proposers[index[key]].append(name)
        if not candidates:  # every member produced nothing: treat it as ending the turn
            candidates, proposers = [Candidate("", True)], [list(drafters)]
        return candidates, proposers

    def _verifiers(self) -> list[str]:
        """Members that score candidates: active (or, with ``exited_members_verify``, every healthy
        member), less those whose role is draft-only (unless that would leave no verifier)."""
        pool = self._healthy() if self.config.exited_members_verify else list(self.active)
        roles = self.config.roles
        return [n for n in pool if roles.get(n, "both") != "draft"] or pool

    def _healthy(self) -> list[str]:
        """Members still in the request (exited ones included), in member order."""
        return [name for name in self.sessions if name not in self.faulted]

    def _weights(self, names: list[str]) -> dict[str, float]:
        """Vote weights: Hedge's (which start from ``member_weights``), else the prior ``member_weights``."""
        if self.config.weighting == "hedge":
            snapshot = self.hedge.snapshot()
            return {n: snapshot[n] for n in names}
        return {n: self.config.member_weights.get(n, 1.0) for n in names}

    def _finish_checks(self, chosen: Candidate, response: str) -> tuple[str | None, str]:
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
        config = self.config
        if not config.model_exit or self.rounds < config.exit_warmup_rounds or len(self.active) <= config.min_members:
            return []
        verify_only = {n for n in self.active if config.roles.get(n, "both") == "verify"}
        leaving = members_to_exit(  # verify-only members propose nothing, so they never compete to stay
            {n: self.quality[n] for n in self.active if n not in verify_only}, config.exit_temperature, config.exit_threshold, config.min_members
        )
        self.active = [n for n in self.active if n not in leaving]
        self.trace.exited.extend(leaving)
        return leaving

    def _round_trace(
        self, candidates, proposers, scored, normalized, repetition, combined, winner, weights, drafters, verifiers, exited
    ) -> RoundTrace:
        return RoundTrace(
            round=self.rounds,
            candidates=[
                CandidateTrace(
                    text=c.text,
                    finished=c.finished,
                    proposers=list(proposers[i]),
                    mean_logprobs={v: s[i] for v, s in scored.items()},
                    normalized={v: float(n[i]) for v, n in normalized.items()},
                    repetition=float(repetition[i]),
                    combined=float(combined[i]),
                )
                for i, c in enumerate(candidates)
            ],
            winner=winner,
            winner_member=proposers[winner][0],
            weights=weights,
            active_members=drafters,
            verifiers=verifiers if scored else [],
            exited=exited,
        )

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
        try:
            self.sessions[name].close()
        except Exception:
            logger.debug("closing the session of failed member %r raised too", name, exc_info=True)
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
        for session in self.sessions.values():
            session.close()
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None
