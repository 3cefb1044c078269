"""Checkers of the built-in dev set (:mod:`.devset`): short answers with a content or format rule.

Each takes (answer, reference) and returns a :class:`CheckResult`; the runner fails any answer that
copies its prompt before these run (:func:`.copying.copies_prompt`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .checkers import CheckResult, check_last_number, parse_number

_EDGE_PUNCTUATION = " \t\n.!,;:\"'`*()[]"


def _bare(answer: str) -> str:
    """The answer without surrounding whitespace, quotes, emphasis and final punctuation."""
    return answer.strip().strip(_EDGE_PUNCTUATION).strip()


def check_answer_any(answer: str, reference: list[str]) -> CheckResult:
    """An accepted answer appears as a whole word or phrase (case-insensitive)."""
    for accepted in reference:
        if re.search(rf"(?<!\w){re.escape(accepted.casefold())}(?!\w)", answer.casefold()):
            return CheckResult(correct=True, extracted=accepted)
    return CheckResult(correct=False)


def check_number(answer: str, reference: Any) -> CheckResult:
    """The last number in the answer is the result."""
    return check_last_number(answer, str(reference))


def check_yes_no(answer: str, reference: str) -> CheckResult:
    """The whole reply is "yes" or "no" (punctuation and case aside), and the right one."""
    bare = _bare(answer).casefold()
    return CheckResult(correct=bare == reference.casefold(), extracted=bare)


def check_one_word(answer: str, reference: list[str]) -> CheckResult:
    """The reply is one word, and an accepted one."""
    bare = _bare(answer)
    if len(bare.split()) != 1:
        return CheckResult(correct=False, extracted=bare, details={"reason": "not a single word"})
    return CheckResult(correct=bare.casefold() in {r.casefold() for r in reference}, extracted=bare)


def check_separated_list(answer: str, reference: dict[str, Any]) -> CheckResult:
    """One line, exactly ``count`` non-empty items between ``separator``s, no other separators."""
    line = answer.strip().rstrip(".")
    if "\n" in line:
        return CheckResult(correct=False, details={"reason": "more than one line"})
    separator = reference["separator"]
    parts = [p.strip() for p in line.split(separator)]
    others = {";", ",", "|"} - {separator}
    ok = len(parts) == reference["count"] and all(parts) and not any(o in line for o in others)
    return CheckResult(correct=ok, extracted=str(len(parts)))


def check_number_only(answer: str, reference: Any) -> CheckResult:
    """The whole reply is the number, in digits."""
    bare = _bare(answer)
    got = parse_number(bare) if re.fullmatch(r"-?\d[\d,]*(\.\d+)?", bare) else None
    return CheckResult(correct=got is not None and got == parse_number(str(reference)), extracted=bare)


def check_exact(answer: str, reference: str) -> CheckResult:
    """The reply is exactly the reference (case-sensitive), final punctuation and quotes aside."""
    bare = _bare(answer)
    return CheckResult(correct=bare == reference, extracted=bare)


SHORT_CHECKERS: dict[str, Callable[[str, Any], CheckResult]] = {
    "answer-any": check_answer_any,
    "number": check_number,
    "yes-no": check_yes_no,
    "one-word": check_one_word,
    "separated-list": check_separated_list,
    "number-only": check_number_only,
    "exact": check_exact,
}
