"""Drafts never spell a stray byte: the token check (utf8_tokens) and the cut behind it, on real tokenizers."""

from __future__ import annotations

import pytest

from specfuse_core import EnsembleConfig, SpecFuse
from specfuse_core.backend import Sampling
from specfuse_core.utf8_tokens import TokenBytes

LEAD = "\u9ec0".encode()[:2]  # the first two bytes of a three-byte character


def stray_byte(tokenizer) -> int:
    """The token for the lone byte 0x80, which can only continue a character."""
    fallback = tokenizer.convert_tokens_to_ids("<0x80>")  # SentencePiece byte fallback (Gemma)
    if isinstance(fallback, int) and fallback != tokenizer.unk_token_id:
        return fallback
    # byte-level BPE (SmolLM2, Qwen) spells the bytes it does not print as chr(256 + n), n counting them in order
    unprinted = [b for b in range(256) if not (0x21 <= b <= 0x7E or 0xA1 <= b <= 0xAC or 0xAE <= b <= 0xFF)]
    return tokenizer.convert_tokens_to_ids(chr(256 + unprinted.index(0x80)))


@pytest.mark.parametrize("name", ["smollm2-135m", "qwen2.5-coder-0.5b", "gemma3-270m"])
def test_token_bytes_follow_utf8(real_tokenizers, name):
    tokenizer = real_tokenizers[name]
    spelling = TokenBytes(tokenizer)
    stray = stray_byte(tokenizer)
    hello = tokenizer(" Hello", add_special_tokens=False)["input_ids"][0]
    assert spelling.scheme is not None
    assert spelling.of(stray) == b"\x80" and spelling.of(hello).endswith(b"Hello")
    assert spelling.follows(b"", stray) is None  # a continuation byte with nothing to continue
    assert spelling.follows(LEAD, stray) == b""  # ...completes the character begun
    assert spelling.follows(LEAD, hello) is None  # a word cannot break a character off
    assert spelling.follows(b"", hello) == b""
    assert spelling.follows(b"", tokenizer.eos_token_id) == b""  # special tokens spell nothing
    after_lead, at_start = spelling.allowed_after(LEAD, len(tokenizer)), spelling.allowed_after(b"", len(tokenizer))
    assert after_lead[stray] and not after_lead[hello]
    assert at_start[hello] and not at_start[stray]
    assert 0 < int(after_lead.sum()) < 1000 < int(at_start.sum())


def test_a_tokenizer_of_another_kind_is_left_unchecked():
    class Plain:  # no fast backend: nothing to tell the bytes by
        all_special_ids: list[int] = []

    assert TokenBytes(Plain()).scheme is None


# unseeded sampling once put "\ufffd" into a hostile-input test; these seeds did so before drafts refused stray bytes
@pytest.mark.parametrize("seed", [99, 140, 171, 276, 294])
def test_sampled_drafts_spell_no_stray_bytes(random_members, seed):
    members = [random_members["llama"], random_members["qwen2"], random_members["gemma3"]]
    ensemble = SpecFuse(members, EnsembleConfig(max_new_tokens=8, segment_tokens=3))
    result = ensemble.generate([{"role": "user", "content": "Name three colours."}], temperature=1.5, seed=seed)
    assert result.text and "\ufffd" not in result.text
    assert all("\ufffd" not in c.text for r in result.trace.rounds for c in r.candidates)


@pytest.mark.parametrize("name", ["llama", "qwen2", "gemma3"])
def test_a_stray_byte_left_in_a_draft_ends_it_before_it_unfinished(random_members, name):
    """The cut behind the check: a continuation byte with no lead decodes to U+FFFD that no later token
    mends, so the draft keeps the text before it and is no longer finished; a clean draft is untouched."""
    member = random_members[name]
    session = member.start([{"role": "user", "content": "Hi"}], Sampling())
    context = session.prompt_ids
    hello, there = member.encode("Hello"), member.encode(" there")
    stray = stray_byte(member.tokenizer)
    assert session._complete_characters(context, hello + [stray] + there, True) == ("Hello", hello, False)
    assert session._complete_characters(context, [stray] + there, True) == ("", [], False)
    assert session._complete_characters(context, hello + there, True) == ("Hello there", hello + there, True)
    session.close()
