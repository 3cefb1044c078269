"""The judge: every decision a round makes about *whom to trust and which candidate wins*, built from
the config once per request.

It owns who drafts and who votes (roles), confidence gating (the lead and its threshold), turning
verifier log-probs into one winner (normalisation, weights, self-votes, repetition penalty,
consensus bonus, tie-break), the Hedge update, cumulative quality and model-exit decisions. The
request (:mod:`.rounds`) only runs members and applies the verdict, so a new scoring rule touches
this module, :mod:`.scoring` (the rule on plain arrays) and a config field, nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from .backend import Candidate, Draft
from .config import EnsembleConfig
from .results import CandidateTrace, RoundTrace
from .scoring import HedgeWeights, combine, consensus_shares, contrast_scores, members_to_exit, normalize_scores, pick_winner
from .text_align import repetition_share


def merge_drafts(drafts: Mapping[str, Draft]) -> tuple[list[Candidate], list[list[str]]]:
    """Distinct candidates in member order, each with every member that proposed it."""
    index: dict[Candidate, int] = {}
    candidates: list[Candidate] = []
    proposers: list[list[str]] = []
    for name, draft in drafts.items():
        key = Candidate(draft.text, draft.finished)
        if not key.text and not key.finished:
            continue  # nothing to propose this round (e.g. only special tokens)
        if key not in index:
            index[key] = len(candidates)
            candidates.append(key)
            proposers.append([])
        proposers[index[key]].append(name)
    if not candidates:  # every member produced nothing: treat it as ending the turn
        candidates, proposers = [Candidate("", True)], [list(drafts)]
    return candidates, proposers


@dataclass
class RoundVerdict:
    """What the judge decided in one round, with every number it decided on (for the trace)."""

    candidates: list[Candidate]
    proposers: list[list[str]]
    weights: dict[str, float]
    combined: np.ndarray
    winner: int
    scored: dict[str, list[float]] = field(default_factory=dict)  # verifier -> mean log-prob per candidate
    normalized: dict[str, np.ndarray] = field(default_factory=dict)
    repetition: np.ndarray | None = None
    consensus: np.ndarray | None = None
    context_free: dict[str, list[float]] = field(default_factory=dict)  # verifier -> mean log-prob without the question

    @property
    def chosen(self) -> Candidate:
        return self.candidates[self.winner]

    @property
    def winner_member(self) -> str:
        """The member credited with the winning segment: its first proposer."""
        return self.proposers[self.winner][0]

    def member_scores(self) -> dict[str, float]:
        """Member -> combined score of the candidate it proposed."""
        return {name: float(self.combined[i]) for i, names in enumerate(self.proposers) for name in names}

    def trace(self, round_number: int, drafts: Mapping[str, Draft], exited: list[str], gated: bool) -> RoundTrace:
        n = len(self.candidates)
        repetition = self.repetition if self.repetition is not None else np.zeros(n)
        consensus = self.consensus if self.consensus is not None else np.zeros(n)
        return RoundTrace(
            round=round_number,
            candidates=[
                CandidateTrace(
                    text=c.text,
                    finished=c.finished,
                    proposers=list(self.proposers[i]),
                    mean_logprobs={v: s[i] for v, s in self.scored.items()},
                    context_free_logprobs={v: s[i] for v, s in self.context_free.items()},
                    normalized={v: float(values[i]) for v, values in self.normalized.items()},
                    repetition=float(repetition[i]),
                    consensus=float(consensus[i]),
                    draft_logprobs={m: drafts[m].mean_logprob for m in self.proposers[i] if drafts[m].mean_logprob is not None},
                    combined=float(self.combined[i]),
                )
                for i, c in enumerate(self.candidates)
            ],
            winner=self.winner,
            winner_member=self.winner_member,
            weights=self.weights,
            active_members=list(drafts),
            verifiers=list(self.scored),
            exited=exited,
            gated=gated,
        )


class Judge:
    """One request's trust and scoring policy (see the module docstring)."""

    def __init__(self, config: EnsembleConfig, hedge: HedgeWeights, members: Sequence[str], history: str) -> None:
        """``history``: the prompt's user and system text, what the repetition penalty compares with."""
        self.config = config
        self.hedge = hedge
        self.history = history
        self.quality = {name: 0.0 for name in members}  # cumulative combined score, for model exit

    # ------------------------------------------------------------------ who drafts, who votes
    def drafters(self, active: Sequence[str]) -> list[str]:
        """Active members that draft every round (all of them if roles would leave nobody)."""
        roles = self.config.roles
        return [n for n in active if roles.get(n, "both") not in ("verify", "reserve")] or list(active)

    def reserves(self, active: Sequence[str], drafting: Sequence[str]) -> list[str]:
        """Active 'reserve' members not already drafting: they draft only in rounds gating does not
        settle, and only under gating (without a lead there is no such round)."""
        if self.config.gate_threshold is None:
            return []
        roles = self.config.roles
        return [n for n in active if roles.get(n, "both") == "reserve" and n not in drafting]

    def verifiers(self, pool: Sequence[str]) -> list[str]:
        """Members of ``pool`` allowed to score, less draft-only ones (unless that leaves no verifier)."""
        roles = self.config.roles
        return [n for n in pool if roles.get(n, "both") != "draft"] or list(pool)

    def lead(self, drafting: Sequence[str], reserves: Sequence[str] = ()) -> str | None:
        """The member that drafts first under confidence gating, when gating is on and it is drafting
        alongside others (or alone with reserves behind it): ``lead_member``, else the highest prior weight."""
        config = self.config
        if config.gate_threshold is None or len(drafting) + len(reserves) < 2:
            return None
        lead = config.lead_member or max(drafting, key=lambda n: config.member_weights.get(n, 1.0))
        return lead if lead in drafting else None

    def confident(self, draft: Draft | None) -> bool:
        """Whether the lead's own mean log-prob of its draft settles the round without a vote."""
        threshold = self.config.gate_threshold
        return draft is not None and draft.mean_logprob is not None and threshold is not None and draft.mean_logprob >= threshold

    def second_opinion(self, lead: str, verifiers: Sequence[str], round_number: int, response_tokens: int = 0) -> str | None:
        """Who checks a confident lead (``gate_check_threshold``): the most trusted verifier besides it;
        nobody after the first ``gate_check_rounds`` rounds, nor once the response has
        ``gate_check_tokens`` tokens."""
        others = [n for n in verifiers if n != lead]
        if self.config.gate_check_threshold is None or not others or not self._in_check_window(round_number, response_tokens):
            return None
        return max(others, key=lambda n: self.config.member_weights.get(n, 1.0))

    def _in_check_window(self, round_number: int, response_tokens: int) -> bool:
        rounds, tokens = self.config.gate_check_rounds, self.config.gate_check_tokens
        return (rounds is None or round_number <= rounds) and (tokens is None or response_tokens < tokens)

    def seconded(self, check_logprob: float | None) -> bool:
        """Whether the second opinion lets the lead's segment through without a vote (no score: yes)."""
        threshold = self.config.gate_check_threshold
        return threshold is None or check_logprob is None or check_logprob >= threshold

    @staticmethod
    def needs_vote(gated: bool, single: bool, candidates: Sequence[Candidate]) -> bool:
        """A vote is taken unless the lead was sure, one member runs alone, or there is one candidate."""
        return not (gated or single or len(candidates) == 1)

    @property
    def wants_contrast(self) -> bool:
        """Whether votes also score candidates without the question (``contrast_weight``)."""
        return self.config.contrast_weight > 0

    def contrast_in(self, round_number: int) -> bool:
        """Whether this round's vote uses the contrast (``contrast_rounds``: only the first rounds)."""
        window = self.config.contrast_rounds
        return self.wants_contrast and (window is None or round_number <= window)

    def scoring_candidates(self, candidates: list[Candidate]) -> list[Candidate]:
        """What verifiers score. Under ``end_of_turn_scoring="text_only"`` a finished candidate with text is
        scored on its text alone, like an unfinished one (an empty finished candidate keeps its end token)."""
        if self.config.end_of_turn_scoring == "token":
            return candidates
        return [Candidate(c.text, c.finished and not c.text) for c in candidates]

    def weights(self, names: Sequence[str]) -> dict[str, float]:
        """Vote weights: Hedge's (which start from ``member_weights``), else the prior ``member_weights``."""
        if self.config.weighting == "hedge":
            snapshot = self.hedge.snapshot()
            return {n: snapshot[n] for n in names}
        return {n: self.config.member_weights.get(n, 1.0) for n in names}

    # ------------------------------------------------------------------ the verdict
    def decide(
        self,
        candidates: list[Candidate],
        proposers: list[list[str]],
        drafts: Mapping[str, Draft],
        scored: dict[str, list[float]],
        weighed: Sequence[str],
        response: str,
        context_free: Mapping[str, list[float]] | None = None,
    ) -> RoundVerdict:
        """The winner of a round from each verifier's log-probs (``scored``, by ``vote_statistic``; empty
        when nothing was voted on: the earliest candidate wins), less ``contrast_weight`` times its
        log-probs without the question (``context_free``, see :meth:`wants_contrast`). Updates Hedge and
        each proposer's quality."""
        config = self.config
        weights = self.weights(weighed)
        free = dict(context_free or {})
        if not scored:
            verdict = RoundVerdict(candidates, proposers, weights, np.ones(len(candidates)) / len(candidates), 0)
        else:
            contrasted = contrast_scores(scored, free, config.contrast_weight)
            normalized = {v: normalize_scores(s, config.normalization, config.score_temperature) for v, s in contrasted.items()}
            combined = combine(normalized, weights, proposers, config.exclude_self_vote)
            repetition = consensus = None
            if config.repetition_penalty:
                repetition = np.array([repetition_share(c.text, self.history + "\n" + response) for c in candidates])
                combined = combined - config.repetition_penalty * repetition
            if config.consensus_weight:
                consensus = consensus_shares([c.text for c in candidates], proposers, {n: d.text for n, d in drafts.items()})
                combined = combined + config.consensus_weight * consensus
            verdict = RoundVerdict(
                candidates, proposers, weights, combined, pick_winner(combined), scored, normalized, repetition, consensus, free
            )
            if config.weighting == "hedge":
                peer_scores = combine(normalized, weights, proposers, exclude_self_vote=True)
                self.hedge.update(peer_scores, {m: i for i, names in enumerate(proposers) for m in names})
        for index, names in enumerate(proposers):
            for name in names:
                self.quality[name] += float(verdict.combined[index])
        return verdict

    # ------------------------------------------------------------------ model exit
    def exits(self, active: Sequence[str], rounds: int) -> list[str]:
        """Members to leave after this round: after the warm-up, those whose share of cumulative quality
        falls below the threshold (verify-only and reserve members propose nothing in most rounds, so they
        never compete to stay)."""
        config = self.config
        if not config.model_exit or rounds < config.exit_warmup_rounds or len(active) <= config.min_members:
            return []
        not_competing = {n for n in active if config.roles.get(n, "both") in ("verify", "reserve")}
        return members_to_exit(
            {n: self.quality[n] for n in active if n not in not_competing}, config.exit_temperature, config.exit_threshold, config.min_members
        )
