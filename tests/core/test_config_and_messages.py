from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from specfuse_core import EnsembleConfig, InvalidConversationError, UnsupportedArgumentError
from specfuse_core.messages import normalize_conversation


@pytest.mark.parametrize(
    "field,value",
    [
        ("max_new_tokens", 0),
        ("max_new_tokens", -5),
        ("temperature", -0.1),
        ("temperature", math.nan),
        ("top_p", 0.0),
        ("top_p", 1.5),
        ("segment_tokens", 0),
        ("stop", [""]),
        ("weighting", "magic"),
        ("vote_statistic", "median"),
        ("normalization", "zscore"),
        ("exit_threshold", 1.0),
        ("unknown_field", 1),
    ],
)
def test_bad_config_values_fail_with_the_field_named(field, value):
    with pytest.raises(ValidationError, match=field):
        EnsembleConfig(**{field: value})


def test_raw_votes_cannot_drive_hedge():
    with pytest.raises(ValidationError, match="raw.*hedge"):
        EnsembleConfig(normalization="raw", weighting="hedge")
    assert EnsembleConfig(normalization="raw", exclude_self_vote=True).normalization == "raw"


def test_overrides_are_validated_and_none_is_ignored():
    config = EnsembleConfig(max_new_tokens=10)
    assert config.with_overrides(max_new_tokens=None) is config
    assert config.with_overrides(max_new_tokens=20, stop="END").stop == ["END"]
    with pytest.raises(ValidationError):
        config.with_overrides(temperature=-1)


def test_overrides_take_the_call_aliases_the_adapters_take():
    config = EnsembleConfig()
    assert config.with_overrides(max_tokens=12).max_new_tokens == 12
    assert config.with_overrides(timeout=3.5).timeout_s == 3.5
    assert config.with_overrides(max_tokens=12, max_new_tokens=20).max_new_tokens == 20  # the field's name wins


def test_unknown_override_names_the_closest_field():
    with pytest.raises(UnsupportedArgumentError, match=r"'segment_token' \(did you mean 'segment_tokens'\?\)"):
        EnsembleConfig().with_overrides(segment_token=4)
    with pytest.raises(UnsupportedArgumentError, match=r"'frobnicate'(?! \(did)"):
        EnsembleConfig().with_overrides(frobnicate=None)  # refused even as None: a typo is never dropped


def test_round_cap_defaults_to_max_new_tokens():
    assert EnsembleConfig(max_new_tokens=33).round_cap == 33
    assert EnsembleConfig(max_new_tokens=33, max_rounds=4).round_cap == 4


def test_string_is_one_user_message():
    assert normalize_conversation("hi") == [{"role": "user", "content": "hi"}]


class _Message:
    def __init__(self, role, content):
        self.role, self.content = role, content


def test_objects_with_role_and_content_are_accepted():
    assert normalize_conversation([_Message("user", "x")]) == [{"role": "user", "content": "x"}]


@pytest.mark.parametrize(
    "messages,fragment",
    [
        ([], "empty"),
        (None, "must be a string"),
        ({"role": "user"}, "must be a string"),
        ([{"role": "system", "content": "be nice"}], "only system"),
        ([{"role": "wizard", "content": "x"}], "unknown role"),
        ([{"role": "user", "content": 3}], "must be a string"),
        ([{"role": "user"}], "needs 'role' and 'content'"),
        ([42], "not a role/content message"),
    ],
)
def test_bad_conversations_raise_named_errors(messages, fragment):
    with pytest.raises(InvalidConversationError, match=fragment):
        normalize_conversation(messages)
