"""no_repeat_ngram_size: local members never draft a token that repeats an n-gram of the response."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from specfuse_core import EnsembleConfig, SpecFuse
from specfuse_core.local.session import ban_unless_nothing_left, repeating_tokens


def test_the_followers_of_the_last_n_minus_one_tokens_are_banned():
    assert repeating_tokens([1, 2, 3, 1, 2], 3) == [3]
    assert repeating_tokens([1, 2, 3, 1, 2, 4, 1, 2], 3) == [3, 4]
    assert repeating_tokens([1, 2, 3], 3) == []  # "2 3" has not occurred before
    assert repeating_tokens([5, 5], 2) == [5]
    assert repeating_tokens([7], 3) == []  # too short to have an n-gram
    assert repeating_tokens([1, 2, 1], 1) == [1, 2]


def test_a_ban_never_leaves_a_row_without_any_token():
    logits = torch.tensor([0.5, 2.0, -1.0])
    ban_unless_nothing_left(logits, [1])
    assert logits.tolist() == [0.5, float("-inf"), -1.0]
    grammar_allows_one = torch.tensor([float("-inf"), 3.0, float("-inf")])
    ban_unless_nothing_left(grammar_allows_one, [1])
    assert grammar_allows_one.tolist() == [float("-inf"), 3.0, float("-inf")]


def test_the_setting_is_validated():
    with pytest.raises(ValidationError):
        EnsembleConfig(no_repeat_ngram_size=-1)
    assert EnsembleConfig().no_repeat_ngram_size == 0


def _bigrams(ids):
    return [tuple(ids[i : i + 2]) for i in range(len(ids) - 1)]


def test_a_looping_member_stops_repeating_its_own_bigrams(real_tokenizers):
    """A random member with small initial weights only ever drafts newlines (a loop); with the
    setting its output never repeats a bigram of its own tokens."""
    from .conftest import random_model

    from specfuse_core import Member

    tokenizer = real_tokenizers["smollm2-135m"]
    member = Member(random_model("llama", len(tokenizer), seed=4, initializer_range=0.02), tokenizer, name="looper")
    ensemble = SpecFuse([member])
    plain = ensemble.generate("Tell me something.", max_new_tokens=30)
    ids = tokenizer.encode(plain.text, add_special_tokens=False)
    assert len(set(_bigrams(ids))) < len(_bigrams(ids))  # it does loop without the setting
    guarded = ensemble.generate("Tell me something.", max_new_tokens=30, no_repeat_ngram_size=2)
    ids = tokenizer.encode(guarded.text, add_special_tokens=False)
    assert len(ids) >= 20
    assert len(set(_bigrams(ids))) == len(_bigrams(ids))
