"""The built-in held-out set: the shipped file matches its generator, it repeats no dev prompt (so a
figure measured on it is not a figure fitted to the dev set), and it keeps the dev set's shape."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from specfuse_core.evaluation.datasets import load_dataset
from specfuse_core.evaluation.errors import UnknownDatasetError
from specfuse_core.evaluation.heldout import HELDOUT_FILE, build_heldout_items
from specfuse_core.evaluation.runner import check


@pytest.fixture(scope="module")
def heldout():
    return {item.id: item for item in load_dataset("heldout")}


def test_shipped_file_is_what_the_generator_builds():
    shipped = [json.loads(line) for line in HELDOUT_FILE.read_text(encoding="utf-8").splitlines()]
    assert shipped == build_heldout_items()


def test_no_prompt_or_id_is_shared_with_the_dev_set(heldout):
    dev = load_dataset("dev")
    assert not {item.prompt for item in dev} & {item.prompt for item in heldout.values()}
    assert not {item.id for item in dev} & set(heldout)
    assert all(item_id.startswith("held-") for item_id in heldout)


def test_same_categories_and_sizes_as_the_dev_set(heldout):
    dev_counts = Counter(item.category for item in load_dataset("dev"))
    assert Counter(item.category for item in heldout.values()) == dev_counts


@pytest.mark.parametrize(
    ("item_id", "answer", "correct"),
    [
        ("held-fact-00", "The capital of China is Beijing.", True),
        ("held-fact-00", "What is the capital of China? Beijing.", False),  # echo first
        ("held-fact-01", "Mexico City is the capital.", True),
        ("held-fact-01", "The capital is in Mexico.", False),
        ("held-instr-00", "Yes", True),
        ("held-instr-01", "No, fire is hot.", False),
        ("held-instr-15", "Fall", True),  # either accepted word
        ("held-instr-33", "42", True),
        ("held-instr-33", "6 times 7 is 42.", False),
    ],
)
def test_checkers_on_held_out_items(heldout, item_id, answer, correct):
    assert check(heldout[item_id], answer).correct is correct


def test_arithmetic_reference_is_the_templates_result(heldout):
    item = heldout["held-arith-00"]
    numbers = [int(word) for word in item.prompt.replace("?", " ").split() if word.isdigit()]
    assert item.reference == sum(numbers)  # the first template adds its two numbers
    assert check(item, f"The answer is {sum(numbers)}.").correct


def test_unknown_builtin_name_lists_both_sets():
    with pytest.raises(UnknownDatasetError, match="dev, heldout"):
        load_dataset("held-out")
