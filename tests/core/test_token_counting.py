"""Token counting in the ensemble's own tokens (issue 13 item 1): what the adapters' ``get_num_tokens``
and ``tokenizer`` call. Random-weight members with the preset's real tokenizers: no generation needed,
except one 1-token request to compare with the usage a request reports."""

from __future__ import annotations

import pytest

from specfuse_core import EnsembleConfig, InvalidConversationError, SpecFuse

TEXT = "Tokenisers disagree: naïve café, 日本語, 👍🏽 and snake_case_identifiers."
CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Name a colour."},
    {"role": "assistant", "content": "Blue."},
    {"role": "user", "content": "Another one?"},
]


@pytest.mark.parametrize("first", ["llama", "qwen2", "gemma3"])
def test_text_is_counted_with_the_first_members_tokenizer(random_members, first):
    others = [m for name, m in random_members.items() if name != first]
    ensemble = SpecFuse([random_members[first], *others])
    expected = random_members[first].tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    assert ensemble.token_ids(TEXT) == expected
    assert ensemble.count_tokens(TEXT) == len(expected) > 0
    assert ensemble.count_tokens("") == 0


def test_counts_differ_by_tokenizer(random_members):
    counts = {name: SpecFuse([m]).count_tokens(TEXT) for name, m in random_members.items()}
    assert len(set(counts.values())) > 1, counts  # a shared GPT-2-style count would be wrong for some


@pytest.mark.parametrize("first", ["llama", "gemma3"])  # a chat template, and the plain format
def test_prompt_count_equals_the_usage_a_request_reports(random_members, first):
    ensemble = SpecFuse([random_members[first], random_members["qwen2"]], EnsembleConfig(max_new_tokens=1, segment_tokens=1))
    counted = ensemble.count_prompt_tokens(CONVERSATION)
    assert counted == ensemble.generate(CONVERSATION).usage.prompt_tokens
    # the template's own tokens are counted: more than the message texts alone
    assert counted > sum(ensemble.count_tokens(m["content"]) for m in CONVERSATION)
    assert ensemble.count_prompt_tokens("Name a colour.") == ensemble.count_prompt_tokens([CONVERSATION[1]])


def test_part_of_a_conversation_can_be_counted(random_members):
    """trim_messages counts prefixes and suffixes: no user message is needed, an empty list is 0."""
    ensemble = SpecFuse([random_members["qwen2"]])
    assert ensemble.count_prompt_tokens([]) == 0
    system_only = ensemble.count_prompt_tokens(CONVERSATION[:1])
    assert 0 < system_only < ensemble.count_prompt_tokens(CONVERSATION[:2]) < ensemble.count_prompt_tokens(CONVERSATION)
    with pytest.raises(InvalidConversationError, match="message 0"):
        ensemble.count_prompt_tokens([{"role": "user", "content": None}])


@pytest.mark.parametrize(
    ("settings", "counter"),
    [
        ({"counting_member": "gemma3"}, "gemma3"),
        ({"lead_member": "qwen2"}, "llama"),  # a lead member alone does not move counting: the first counts
        ({"lead_member": "qwen2", "counting_member": "gemma3"}, "gemma3"),
    ],
)
def test_the_counting_member_can_be_named(random_members, settings, counter):
    """The length cap and usage count in the named member's tokens (so an ensemble whose text mostly comes
    from one member can get that member's length budget); prompt and completion counts agree with it."""
    members = [random_members[n] for n in ("llama", "qwen2", "gemma3")]
    ensemble = SpecFuse(members, EnsembleConfig(max_new_tokens=3, segment_tokens=4, **settings))
    assert ensemble.counting_member.name == counter
    expected = random_members[counter].tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    assert ensemble.token_ids(TEXT) == expected
    result = ensemble.generate(CONVERSATION)
    assert result.usage.prompt_tokens == ensemble.count_prompt_tokens(CONVERSATION)
    assert result.usage.completion_tokens == ensemble.count_tokens(result.text) <= 3


def test_an_unknown_counting_member_is_refused(random_members):
    from specfuse_core.errors import UnknownMemberNameError

    with pytest.raises(UnknownMemberNameError, match="counting_member names 'nobody'"):
        SpecFuse([random_members["qwen2"]], EnsembleConfig(counting_member="nobody"))
