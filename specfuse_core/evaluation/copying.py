"""Does an answer copy its prompt? Small models (a base model above all) often answer a question by
writing the question again, and likelihood-based verification rewards that. An answer that copies
the prompt must fail, whatever else it contains, or the harness would hide the failure.

Words are compared lower-cased, as runs of ``\\w+`` tokens, so punctuation and spacing do not matter.
"""

from __future__ import annotations

import re

COPY_RUN_WORDS = 8  # in a long answer, runs of this many consecutive prompt words count as copied
MIN_SENTENCE_WORDS = 4  # a whole prompt sentence of at least this many words, repeated as a sentence, is an echo

_WORD = re.compile(r"\w+")
_SENTENCE_END = re.compile(r"(?<=[.?!])\s+|\n+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.casefold())


def _ngrams(tokens: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


def copies_prompt(answer: str, prompt: str) -> bool:
    """True when one of the answer's sentences *is* the prompt's question (a sentence ending in "?"),
    or, for a prompt that asks no question, one of its instructions (>= 4 words either way).
    "What is the capital of France? Paris." echoes; "The capital of France is Paris." does not, nor
    does "To find how many cookies are left, ..." or restating a premise before solving ("There are 3
    boxes with 9 cookies in each box. 3 x 9 = 27"). Long copied runs are :func:`restates_prompt`'s."""
    sentences = [s.strip() for s in _SENTENCE_END.split(prompt) if s.strip()]
    questions = [s for s in sentences if s.endswith("?")] or sentences
    asked = {tuple(words(s)) for s in questions if len(words(s)) >= MIN_SENTENCE_WORDS}
    return any(tuple(words(s)) in asked for s in _SENTENCE_END.split(answer))


def copied_share(answer: str, prompt: str) -> float:
    """Share of the answer's words that lie in runs of 8+ words copied from the prompt (0..1)."""
    said, asked = words(answer), words(prompt)
    if len(said) < COPY_RUN_WORDS or len(asked) < COPY_RUN_WORDS:
        return 0.0
    grams = _ngrams(asked, COPY_RUN_WORDS)
    covered = [False] * len(said)
    for i in range(len(said) - COPY_RUN_WORDS + 1):
        if tuple(said[i : i + COPY_RUN_WORDS]) in grams:
            covered[i : i + COPY_RUN_WORDS] = [True] * COPY_RUN_WORDS
    return sum(covered) / len(said)


def restates_prompt(answer: str, prompt: str, share: float = 0.5) -> bool:
    """True when at least half the answer is copied prompt text: the answer mostly restates the task
    (used for GSM8K and IFEval, whose long answers may quote a phrase of the question legitimately)."""
    return copied_share(answer, prompt) >= share
