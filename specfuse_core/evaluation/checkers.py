"""Answer checkers: each turns (model output, reference) into a pass/fail plus details.

GSM8K and custom JSONL sets use the pure-text checkers here; IFEval's instruction checks live in
:mod:`.ifeval` (a maintained scorer package, not a re-implementation)."""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel, Field

from .errors import UnknownCheckerError


class CheckResult(BaseModel):
    """One item's verdict. ``details`` holds checker-specific numbers (IFEval's per-instruction passes)."""

    correct: bool
    extracted: str | None = Field(default=None, description="what the checker read from the output")
    details: dict[str, Any] = Field(default_factory=dict)


# A number as people write it in answers: optional sign and $, thousands commas, decimals.
_NUMBER = re.compile(r"-?(?:\$\s?)?\d[\d,]*(?:\.\d+)?")


def parse_number(text: str) -> Decimal | None:
    """``"$1,234.50"`` -> 1234.5; commas, ``$`` and a trailing period are tolerated."""
    cleaned = text.strip().replace(",", "").replace("$", "").replace(" ", "").rstrip(".")
    try:
        return Decimal(cleaned).normalize()
    except InvalidOperation:
        return None


def _is_list_marker(text: str, start: int, end: int) -> bool:
    """``3.`` / ``3)`` opening a line and followed by text: a step number, not an answer."""
    line_start = text.rfind("\n", 0, start) + 1
    return not text[line_start:start].strip() and re.match(r"[.)][ \t]+\S", text[end:]) is not None


def last_number(text: str) -> Decimal | None:
    """The last number in a model's output (the usual GSM8K extraction), or None. Step numbers of a
    list (``3. Add ...``) are skipped: a cut-off answer would otherwise "answer" its step count."""
    for match in reversed(list(_NUMBER.finditer(text))):
        if _is_list_marker(text, match.start(), match.end()):
            continue
        value = parse_number(match.group(0))
        if value is not None:
            return value
    return None


def gsm8k_reference(answer: str) -> str:
    """The final number of a GSM8K solution, which follows ``####``."""
    if "####" not in answer:
        raise ValueError("a GSM8K answer must end with '#### N'")
    return answer.rsplit("####", 1)[1].strip()


def _format(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def check_last_number(output: str, reference: str) -> CheckResult:
    """Correct when the output's last number equals the reference number (1,000 == 1000 == 1000.0)."""
    expected = parse_number(str(reference))
    if expected is None:
        raise ValueError(f"reference {reference!r} is not a number")
    got = last_number(output)
    return CheckResult(correct=got is not None and got == expected, extracted=_format(got))


def check_exact_match(output: str, reference: str) -> CheckResult:
    """Whole output equals the reference, ignoring surrounding whitespace and letter case."""
    got = output.strip()
    return CheckResult(correct=got.casefold() == str(reference).strip().casefold(), extracted=got)


def check_contains(output: str, reference: str) -> CheckResult:
    """The reference appears anywhere in the output (case-insensitive)."""
    return CheckResult(correct=str(reference).strip().casefold() in output.casefold())


def check_regex(output: str, reference: str) -> CheckResult:
    """The reference is a regular expression that must match somewhere in the output."""
    match = re.search(str(reference), output)
    return CheckResult(correct=match is not None, extracted=match.group(0) if match else None)


TextChecker = Callable[[str, Any], CheckResult]

TEXT_CHECKERS: dict[str, TextChecker] = {
    "exact-match": check_exact_match,
    "contains": check_contains,
    "last-number": check_last_number,
    "regex": check_regex,
}


def text_checker(name: str) -> TextChecker:
    try:
        return TEXT_CHECKERS[name]
    except KeyError:
        raise UnknownCheckerError(f"unknown checker {name!r}; choose one of: {', '.join(TEXT_CHECKERS)}") from None
