"""Turn verifier log-probabilities into one winner: normalise, weight, combine, break ties.

Kept free of model code: inputs are plain arrays, so every rule here is unit-tested directly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def normalize_scores(mean_logprobs: Sequence[float], method: str, temperature: float = 1.0) -> np.ndarray:
    """Map one verifier's log-probs over candidates to its votes (a distribution that sums to 1, but for ``raw``).

    ``softmax`` keeps how much better a candidate is; ``rank`` (Borda) keeps only the order; ``raw``
    keeps the log-probs themselves (not a distribution), so that verifiers' doubts compare across
    verifiers instead of each against its own favourite.
    """
    scores = np.asarray(mean_logprobs, dtype=np.float64)
    if scores.size == 0 or method == "raw":
        return scores
    if method == "softmax":
        shifted = (scores - scores.max()) / temperature
        weights = np.exp(shifted)
        return weights / weights.sum()
    if method == "rank":
        if scores.size == 1:
            return np.ones(1)
        # Borda points: how many candidates each one beats, ties counting half.
        points = np.array([(scores[i] > scores).sum() + 0.5 * ((scores[i] == scores).sum() - 1) for i in range(scores.size)])
        total = points.sum()
        return points / total if total > 0 else np.full(scores.size, 1.0 / scores.size)
    raise ValueError(f"unknown normalization {method!r}")


def contrast_scores(
    conditional: Mapping[str, Sequence[float]], context_free: Mapping[str, Sequence[float]], weight: float
) -> dict[str, list[float]]:
    """Each verifier's log-prob of each candidate after the prompt, less ``weight`` times its log-prob
    without the question (pointwise mutual information at ``weight`` 1).

    Likelihood alone rewards text that any prompt would get (a generic opening); the difference keeps
    what the question itself makes likely. A verifier with no context-free scores keeps its own.
    """
    out: dict[str, list[float]] = {}
    for verifier, scores in conditional.items():
        free = context_free.get(verifier)
        if free is None or weight == 0:
            out[verifier] = [float(x) for x in scores]
        else:
            if len(free) != len(scores):
                raise ValueError(f"verifier {verifier!r}: {len(scores)} conditional scores but {len(free)} context-free ones")
            out[verifier] = [float(a) - weight * float(b) for a, b in zip(scores, free)]
    return out


def combine(
    normalized: Mapping[str, np.ndarray],
    weights: Mapping[str, float],
    proposers: Sequence[Sequence[str]],
    exclude_self_vote: bool = False,
) -> np.ndarray:
    """Weighted mean over verifiers of each candidate's normalised score.

    With ``exclude_self_vote`` a verifier does not vote on candidates it proposed; each candidate's
    score is then the weighted mean over the verifiers that may vote on it (all of them if none may).
    """
    n = len(proposers)
    combined = np.zeros(n)
    for index in range(n):
        voters = [v for v in normalized if not (exclude_self_vote and v in proposers[index])] or list(normalized)
        total_weight = sum(weights[v] for v in voters)
        combined[index] = sum(weights[v] * normalized[v][index] for v in voters) / total_weight
    return combined


def pick_winner(combined: np.ndarray) -> int:
    """Highest combined score; ties go to the earliest candidate (candidates are ordered by member order)."""
    best = combined.max()
    return int(np.flatnonzero(np.isclose(combined, best, rtol=0.0, atol=1e-12))[0])


class HedgeWeights:
    """SpecEM's online multiplicative weights ("Hedge") over members.

    After each scored round, member m loses ``1 - r_m``, where ``r_m`` is its candidate's score as
    rated by the *other* members (their weighted, normalised votes: ``combine`` without self-votes)
    relative to the best candidate by that measure (1 = best). Weights shrink by
    ``exp(-eta_t * loss)`` with a decaying step ``eta_t = eta_0 / sqrt(t)`` and are renormalised to
    mean 1. With ``exclude_self_vote`` the winner is exactly the peers' best, so a member that keeps
    winning keeps gaining weight.
    """

    def __init__(self, names: Sequence[str], learning_rate: float, initial: Mapping[str, float] | None = None) -> None:
        """``initial``: prior weights (e.g. calibrated); members not named start at 1."""
        self.learning_rate = learning_rate
        self.weights = {name: float((initial or {}).get(name, 1.0)) for name in names}
        self.updates = 0

    def snapshot(self) -> dict[str, float]:
        return dict(self.weights)

    def update(self, peer_scores: np.ndarray, candidate_of: Mapping[str, int]) -> None:
        """``peer_scores``: each candidate's score from the members that did not propose it;
        ``candidate_of``: each member that drafted this round -> the index of its candidate."""
        best = float(np.max(peer_scores))
        losses = {m: 1.0 - (float(peer_scores[i]) / best if best > 0 else 0.0) for m, i in candidate_of.items()}
        if not losses:
            return
        self.updates += 1
        eta = self.learning_rate / np.sqrt(self.updates)
        for member, loss in losses.items():
            self.weights[member] *= float(np.exp(-eta * loss))
        mean = sum(self.weights.values()) / len(self.weights)
        for member in self.weights:
            self.weights[member] /= mean


def first_words(text: str, count: int = 3) -> tuple[str, ...]:
    return tuple(text.split()[:count])


def consensus_shares(texts: Sequence[str], proposers: Sequence[Sequence[str]], drafts: Mapping[str, str], count: int = 3) -> np.ndarray:
    """For each candidate: the share of *other* drafters whose own draft begins with the same first
    ``count`` words (fewer if the candidate is shorter). Corroboration that identical-text merging misses:
    two members that agree on how the answer starts but not on where their segment ends."""
    shares = np.zeros(len(texts))
    for index, text in enumerate(texts):
        head = first_words(text, count)
        others = [d for name, d in drafts.items() if name not in proposers[index]]
        if head and others:
            shares[index] = sum(first_words(d, len(head)) == head for d in others) / len(others)
    return shares


def exit_shares(cumulative_quality: Mapping[str, float], temperature: float) -> dict[str, float]:
    """Softmax of cumulative quality over the active members (the model-exit distribution)."""
    names = list(cumulative_quality)
    values = np.array([cumulative_quality[n] for n in names], dtype=np.float64) / temperature
    values = np.exp(values - values.max())
    values /= values.sum()
    return dict(zip(names, values.tolist()))


def members_to_exit(
    cumulative_quality: Mapping[str, float], temperature: float, threshold: float, min_members: int
) -> list[str]:
    """Members whose share falls below the threshold, worst first, never leaving fewer than ``min_members``."""
    shares = exit_shares(cumulative_quality, temperature)
    below = sorted((share, name) for name, share in shares.items() if share < threshold)
    room = max(0, len(shares) - min_members)
    return [name for _, name in below[:room]]
