"""Pure text rules for segment boundaries and stop strings (no model code, so they are property-tested)."""

from __future__ import annotations

import re
from collections.abc import Sequence

REPLACEMENT_CHAR = "\ufffd"
_WORD_END = re.compile(r"\w\Z")
_LAST_WHITESPACE = re.compile(r"\s(?=\S*\Z)")


def before_broken_bytes(text: str, finished: bool) -> tuple[str, bool]:
    """A drafted text up to its first U+FFFD, which is still unfinished if anything was cut.

    A sampled stray byte (a UTF-8 continuation byte with no lead, or a lead byte followed by text)
    decodes to U+FFFD and no later byte mends it. Cutting there keeps it out of the answer and loses
    nothing a model meant: the next round drafts again from the clean text. (A U+FFFD at the very end
    may be a character still in the making; callers hold that back before.)
    """
    index = text.find(REPLACEMENT_CHAR)
    return (text, finished) if index < 0 else (text[:index], False)


def cut_to_word_boundary(text: str, finished: bool) -> str:
    """Cut an unfinished draft back so it does not end inside a word.

    A space is left for the next segment (tokenizers attach it to the following word); a newline
    or other break stays. Without any whitespace, or when the cut would leave nothing, the text is
    kept whole. A finished draft is never cut.
    """
    if finished or not _WORD_END.search(text):
        return text
    match = _LAST_WHITESPACE.search(text)
    if match is None:
        return text
    index = match.start()
    cut = text[:index] if text[index] == " " else text[: index + 1]
    return cut if cut else text


def stop_position(text: str, stops: Sequence[str], start: int = 0) -> int | None:
    """Index of the earliest stop string that occurs at or after ``start``, or None."""
    best: int | None = None
    for stop in stops:
        found = text.find(stop, start)
        if found != -1 and (best is None or found < best):
            best = found
    return best


def stop_holdback(text: str, stops: Sequence[str]) -> int:
    """Length of the longest suffix of ``text`` that could still grow into a stop string.

    Streaming holds these characters back so stop text never reaches the caller.
    """
    longest = 0
    for stop in stops:
        for length in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:length]):
                longest = length
                break
    return longest


def end_of_turn_position(text: str, ends: Sequence[str], start: int = 0, floor: int = 0) -> int | None:
    """Where a plain-format member's end of turn (``"\\nUser:"``) begins in ``text``, or None.

    The earliest end text at or after ``start`` counts, and the newlines right before it go with it
    (``"sea.\\n\\nUser:"`` ends at ``"sea."``, as a plain-format draft is cut), but never before
    ``floor`` (text already released to the caller stays).
    """
    found = stop_position(text, ends, start)
    if found is None:
        return None
    while found > floor and text[found - 1] == "\n":
        found -= 1
    return found


def end_of_turn_holdback(text: str, ends: Sequence[str]) -> int:
    """Length of the suffix of ``text`` to hold back because it could still become an end of turn
    (see :func:`end_of_turn_position`): a partial end text and the newlines before it."""
    held = stop_holdback(text, ends)
    if held:
        while held < len(text) and text[-held - 1] == "\n":
            held += 1
    return held


def word_trigrams(text: str) -> list[tuple[str, ...]]:
    words = text.lower().split()
    return [tuple(words[i : i + 3]) for i in range(len(words) - 2)]


def repetition_share(candidate: str, history: str) -> float:
    """Share of the candidate's word 3-grams (joined onto the history's tail) already present in the history."""
    tail_words = history.split()[-2:]
    candidate_grams = word_trigrams(" ".join(tail_words) + candidate) if tail_words else word_trigrams(candidate)
    if not candidate_grams:
        return 0.0
    seen = set(word_trigrams(history))
    return sum(gram in seen for gram in candidate_grams) / len(candidate_grams)
