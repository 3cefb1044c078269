"""GSM8K number parsing and the custom-JSONL checkers."""

from __future__ import annotations

from decimal import Decimal

import pytest

from specfuse_core.evaluation.checkers import (
    check_contains,
    check_exact_match,
    check_last_number,
    check_regex,
    gsm8k_reference,
    last_number,
    parse_number,
    text_checker,
)
from specfuse_core.evaluation.errors import UnknownCheckerError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The answer is 42", "42"),
        ("She pays $1,234.50 in total.", "1234.5"),
        ("So 3 + 4 = 7.", "7"),
        ("It drops to -5 degrees", "-5"),
        ("costs $18", "18"),
        ("1,000,000 people", "1000000"),
        ("5 apples then 12\n#### 12", "12"),
        ("3.0", "3"),
        ("values 10 and 20.", "20"),
        ("It needs 4 bolts.\n3. Determine the total", "4"),  # a step number is not an answer
        ("Steps:\n  2) add them\n18.", "18"),
        ("The total is\n18.\n", "18"),
    ],
)
def test_last_number(text, expected):
    assert last_number(text) == Decimal(expected)


def test_no_number_is_none():
    assert last_number("I do not know.") is None
    assert last_number("1. Read the problem\n2. Add") is None
    assert check_last_number("I do not know.", "3").correct is False


def test_parse_number_tolerates_dollar_comma_and_period():
    assert parse_number("$1,200.") == Decimal("1200")
    assert parse_number("abc") is None


def test_gsm8k_reference_reads_after_hashes():
    assert gsm8k_reference("She makes 9 * 2 = $<<9*2=18>>18.\n#### 18") == "18"
    assert gsm8k_reference("#### 1,000") == "1,000"
    with pytest.raises(ValueError, match="####"):
        gsm8k_reference("no final answer")


def test_last_number_checker_compares_values_not_strings():
    assert check_last_number("Total: $1,000.", "1000").correct
    assert check_last_number("Total: 1000.0", "1,000").correct
    assert check_last_number("first 1000 then 999", "1000").correct is False  # the last number counts
    result = check_last_number("it is 7.5", "7.5")
    assert result.correct and result.extracted == "7.5"


def test_exact_match_ignores_case_and_surrounding_space():
    assert check_exact_match("  Paris\n", "paris").correct
    assert check_exact_match("Paris, France", "Paris").correct is False


def test_contains():
    assert check_contains("The capital is PARIS.", "Paris").correct
    assert check_contains("The capital is Lyon.", "Paris").correct is False


def test_regex():
    result = check_regex("Answer: B) blue", r"\b[Bb]\)")
    assert result.correct and result.extracted == "B)"
    assert check_regex("Answer: C", r"^B$").correct is False


def test_unknown_checker_names_the_choices():
    with pytest.raises(UnknownCheckerError, match="exact-match"):
        text_checker("fuzzy")
    assert text_checker("regex") is check_regex
