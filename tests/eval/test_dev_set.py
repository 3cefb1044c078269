"""The built-in dev set and its checkers: the shipped file matches its generator, every category is
large enough, and answers that echo the prompt fail."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from specfuse_core.evaluation.copying import copied_share, copies_prompt, restates_prompt
from specfuse_core.evaluation.datasets import load_dataset
from specfuse_core.evaluation.devset import DEV_FILE, build_items
from specfuse_core.evaluation.runner import check


@pytest.fixture(scope="module")
def dev():
    return {item.id: item for item in load_dataset("dev")}


def test_shipped_file_is_what_the_generator_builds():
    shipped = [json.loads(line) for line in DEV_FILE.read_text(encoding="utf-8").splitlines()]
    assert shipped == build_items()


def test_at_least_150_items_in_three_categories(dev):
    counts = Counter(item.category for item in dev.values())
    assert sum(counts.values()) >= 150
    assert set(counts) == {"facts", "arithmetic", "instructions"} and min(counts.values()) >= 40


def test_arithmetic_references_are_right(dev):
    item = dev["arith-00"]  # "Tom has 21 stamps and gets 7 more. ..."
    assert item.reference == 28 and check(item, "Tom now has 28 stamps.").correct
    assert not check(item, "Tom has 21 stamps.").correct


@pytest.mark.parametrize(
    ("item_id", "answer", "correct"),
    [
        ("fact-00", "The capital of France is Paris.", True),
        ("fact-00", "What is the capital of France? Paris.", False),  # echo, then the answer
        ("fact-00", "Parisian food is famous.", False),  # whole words only
        ("fact-18", "The boiling point of water at sea level is 100°C.", True),  # restating is not echoing
        ("instr-00", "Yes.", True),
        ("instr-00", "Yes, the Sun is a star.", False),
        ("instr-00", "Is the Sun a star? Answer with only yes or no.", False),
        ("instr-10", "Blue", True),
        ("instr-10", "The sky is blue.", False),
        ("instr-20", "red; blue; yellow", True),
        ("instr-20", "red, blue, yellow", False),
        ("instr-20", "red; blue", False),
        ("instr-30", "2", True),
        ("instr-30", "A bicycle has 2 wheels.", False),
        ("instr-40", None, True),
    ],
)
def test_short_answer_checkers(dev, item_id, answer, correct):
    item = dev[item_id]
    if answer is None:  # the exact checker: the reference itself passes, lower case does not
        assert check(item, item.reference).correct and not check(item, item.reference.lower()).correct
        return
    assert check(item, answer).correct is correct


def test_copy_rules():
    prompt = "Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning. How much does she make?"
    assert copies_prompt("How much does she make? She makes 18 dollars.", prompt)
    assert not copies_prompt("She eats three for breakfast every morning. So she sells 13.", prompt)  # premise, then work
    assert not copies_prompt("To find how much does she make, subtract.", prompt)
    assert copies_prompt("Write the word 'hello' in capital letters and nothing else.", "Write the word 'hello' in capital letters and nothing else.")
    echo = "Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning."
    assert copied_share(echo, prompt) == 1.0 and restates_prompt(echo, prompt)
    solved = "Janet's ducks lay 16 eggs per day, so after 3 eaten and 4 baked she sells 9 for $2 each: 18 dollars."
    assert not restates_prompt(solved, prompt)
