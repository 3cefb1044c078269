"""Per-input trust: which member to trust depends on what is asked.

A calibration's accuracies are averages over a whole labelled set. On the tiny preset they hide the
one thing that matters most: the best member overall (Qwen) writes long chains of thought for word
problems, where a smaller member answers outright, and the reverse holds for instructions. The
router keeps the labelled prompts with each member's right/wrong outcome, finds the calibration
prompts most like the incoming one (cosine similarity of character n-gram TF-IDF vectors: no model,
no extra dependency, about 20 ms for 160 prompts), and re-fits the trust settings on those neighbours.
Each neighbour counts ``similarity ** similarity_power``, so a near-identical labelled prompt
outweighs a crowd of loosely similar ones; the local accuracy is shrunk towards the set-wide
accuracy (``prior_strength`` pseudo-items), and a prompt unlike every labelled one (best similarity
under ``min_similarity``) keeps the global calibration. PackLLM (arXiv 2404.11531)
weights members per input in the same spirit, from the prompt's perplexity instead of labels.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from functools import cached_property

from pydantic import BaseModel, ConfigDict, Field, model_validator

_SPACES = re.compile(r"\s+")


def char_ngrams(text: str, sizes: Sequence[int] = (3, 4, 5)) -> Counter[str]:
    """Character n-grams of the lower-cased text, words padded with spaces (digits kept as a class)."""
    normalised = " " + _SPACES.sub(" ", re.sub(r"\d", "0", text.lower())).strip() + " "
    grams: Counter[str] = Counter()
    for n in sizes:
        grams.update(normalised[i : i + n] for i in range(max(len(normalised) - n + 1, 0)))
    return grams


class RoutedItem(BaseModel):
    """One labelled prompt and which members answered it correctly alone."""

    prompt: str
    correct: dict[str, bool]


class PromptRouter(BaseModel):
    """Nearest labelled prompts -> per-member accuracy for this input (see the module docstring)."""

    model_config = ConfigDict(ignored_types=(cached_property,))

    items: list[RoutedItem]
    neighbours: int = Field(15, ge=1, description="labelled prompts consulted per request")
    min_similarity: float = Field(0.2, ge=0.0, le=1.0, description="below this best similarity the global calibration holds")
    prior_strength: float = Field(1.0, ge=0.0, description="pseudo-items of set-wide accuracy mixed into the local estimate")
    similarity_power: float = Field(
        2.0, ge=0.0, description="each neighbour counts similarity**power (0: all neighbours alike; 2: a near-identical prompt dominates)"
    )
    leave_one_out: bool = Field(
        False, description="ignore a labelled prompt identical to the request (evaluation on the calibration set itself)"
    )

    @model_validator(mode="after")
    def _same_members(self) -> "PromptRouter":
        if not self.items:
            raise ValueError("a router needs at least one labelled prompt")
        names = set(self.items[0].correct)
        if any(set(item.correct) != names for item in self.items):
            raise ValueError("every routed item must name the same members")
        return self

    @property
    def member_names(self) -> list[str]:
        return list(self.items[0].correct)

    @cached_property
    def _index(self) -> tuple[list[dict[str, float]], dict[str, float]]:
        counts = [char_ngrams(item.prompt) for item in self.items]
        document_frequency: Counter[str] = Counter()
        for grams in counts:
            document_frequency.update(grams.keys())
        total = len(counts)
        idf = {gram: math.log((1 + total) / (1 + df)) + 1.0 for gram, df in document_frequency.items()}
        return [_unit(grams, idf) for grams in counts], idf

    def similarities(self, prompt: str) -> list[float]:
        """Cosine similarity of ``prompt`` to every labelled prompt (same order as ``items``)."""
        vectors, idf = self._index
        query = _unit(char_ngrams(prompt), idf)
        return [sum(weight * vector.get(gram, 0.0) for gram, weight in query.items()) for vector in vectors]

    def local_accuracy(self, prompt: str) -> dict[str, float] | None:
        """Each member's accuracy on the prompts most like ``prompt``, shrunk towards its set-wide
        accuracy; ``None`` when no labelled prompt is similar enough."""
        scored = list(zip(self.similarities(prompt), self.items))
        if self.leave_one_out:
            scored = [(s, item) for s, item in scored if item.prompt != prompt]
        if not scored:
            return None
        overall = _accuracy([item for _, item in scored], self.member_names)
        scored.sort(key=lambda pair: -pair[0])
        nearest = [(s, item) for s, item in scored[: self.neighbours] if s >= self.min_similarity]
        if not nearest:
            return None
        weights = [similarity**self.similarity_power for similarity, _ in nearest]
        evidence = sum(weights)
        prior = self.prior_strength
        return {
            name: (sum(w for w, (_, item) in zip(weights, nearest) if item.correct[name]) + prior * overall[name]) / (evidence + prior)
            for name in self.member_names
        }


def _accuracy(items: Sequence[RoutedItem], names: Sequence[str]) -> dict[str, float]:
    return {name: sum(item.correct[name] for item in items) / len(items) for name in names}


def _unit(grams: Mapping[str, int], idf: Mapping[str, float]) -> dict[str, float]:
    """TF-IDF vector scaled to length 1 (n-grams unseen in the labelled set carry no weight)."""
    weighted = {gram: count * idf[gram] for gram, count in grams.items() if gram in idf}
    norm = math.sqrt(sum(v * v for v in weighted.values())) or 1.0
    return {gram: value / norm for gram, value in weighted.items()}
