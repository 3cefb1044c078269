"""Per-member matchers on real tokenizers: masks, accepting tokens, end of turn only where the grammar
is complete, and re-sync to texts drafted by other members (other tokenizers)."""

from __future__ import annotations

import json

import pytest
import torch

from specfuse_core.constrained import MemberConstraint, allowed_mask, response_format_from
from specfuse_core.errors import GrammarEngineError, GrammarResyncError

from .conftest import GEMMA, QWEN, SMOL, end_ids

MEMBERS = (SMOL, GEMMA, QWEN)
PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}, "tags": {"type": "array", "items": {"enum": ["a", "b"]}}},
    "required": ["name", "age", "tags"],
}
DOC = json.dumps({"name": "Ada Lovelace", "age": 36, "tags": ["a", "b"]})


def greedy_draft(constraint: MemberConstraint, view, steps: int, seed: int) -> list[int]:
    """Draft under the mask from random logits (a stand-in for a model): every pick must be allowed."""
    generator = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(steps):
        if constraint.is_complete():
            break
        logits = torch.randn(len(view.tokenizer), generator=generator)
        constraint.mask_logits(logits)
        token = int(torch.argmax(logits))
        assert torch.isfinite(logits[token])
        constraint.accept_token(token)
        out.append(token)
    return out


@pytest.mark.parametrize("member", MEMBERS)
def test_masked_random_drafts_stay_valid_prefixes(make_constraint, views, member):
    """Whatever the logits, the mask keeps every drafted token inside the grammar; another member's
    matcher (another tokenizer) accepts the decoded text as a prefix too."""
    constraint = make_constraint(member, PERSON)
    tokens = greedy_draft(constraint, views[member], steps=25, seed=7)
    text = views[member].decode(tokens)
    for other in MEMBERS:
        make_constraint(other, PERSON).sync_to(text)  # raises if not a valid prefix


@pytest.mark.parametrize("member", MEMBERS)
def test_end_of_turn_only_where_the_grammar_is_complete(make_constraint, views, member):
    constraint = make_constraint(member, PERSON)
    end = end_ids(views[member])[0]
    ids = views[member].encode(DOC)
    for i, token in enumerate(ids):
        assert not constraint.end_allowed()
        assert not bool(constraint.allowed(len(views[member].tokenizer))[end])
        constraint.accept_token(token)
    assert constraint.end_allowed() and constraint.is_complete()
    allowed = constraint.allowed(len(views[member].tokenizer))
    assert bool(allowed[end]) and int(allowed.sum()) == 1  # a closed object: only the end of turn


def test_mask_logits_sets_disallowed_to_minus_infinity_and_keeps_allowed(make_constraint, views):
    constraint = make_constraint(QWEN, PERSON)
    logits = torch.zeros(2, len(views[QWEN].tokenizer) + 64)  # model logits can be wider than the tokenizer
    constraint.mask_logits(logits)
    allowed = torch.isfinite(logits[0])
    assert torch.equal(allowed, torch.isfinite(logits[1]))
    opening = views[QWEN].encode('{"')  # the forced start, in this tokenizer's own spelling
    assert len(opening) == 1 and allowed[opening[0]]
    assert not allowed[views[QWEN].encode("hello")[0]]
    assert not allowed[-64:].any()
    assert torch.equal(allowed, constraint.allowed(logits.shape[-1]))


def test_a_token_outside_the_mask_is_a_member_fault(make_constraint, views):
    constraint = make_constraint(SMOL, PERSON)
    with pytest.raises(GrammarEngineError, match="rejects"):
        constraint.accept_token(views[SMOL].encode("hello")[0])
    constraint.accept_token(views[SMOL].encode("{")[0])  # the state is unchanged and still usable
    assert len(constraint.tokens) == 1


@pytest.mark.parametrize("drafter", MEMBERS)
@pytest.mark.parametrize("follower", MEMBERS)
def test_resync_after_segments_drafted_by_another_tokenizer(make_constraint, views, drafter, follower):
    """Segments of a document, cut where the drafter's tokens end, re-synced in every member: the
    follower's state after each cut is exactly the state of a fresh matcher fed that text."""
    ids = views[drafter].encode(DOC)
    follower_c = make_constraint(follower, PERSON)
    for cut in range(3, len(ids) + 3, 4):
        text = views[drafter].decode(ids[:cut])
        follower_c.sync_to(text)
        assert follower_c.tokens == views[follower].encode(text)
        assert follower_c.synced_text == text
        assert follower_c.end_allowed() == (text == DOC)
    follower_c.sync_to(DOC)
    assert follower_c.end_allowed()


def test_resync_mid_token_and_after_own_draft_rolls_back(make_constraint, views):
    """The member drafted its own continuation; another member's shorter text won, ending inside
    what this tokenizer spells as one token. The state is that text's, and drafting goes on from it."""
    constraint = make_constraint(QWEN, PERSON)
    constraint.sync_to('{"name": "Ada')
    for token in views[QWEN].encode(' Lovelace", "age": 3'):  # its own draft this round
        constraint.accept_token(token)
    constraint.sync_to('{"name": "Ada Lov')  # the winner stopped mid-word
    assert constraint.tokens == views[QWEN].encode('{"name": "Ada Lov')
    mask = constraint.allowed(len(views[QWEN].tokenizer))
    assert mask[views[QWEN].encode("elace")[0]]
    constraint.sync_to(DOC)
    assert constraint.end_allowed()


def test_text_that_is_not_a_valid_prefix_is_a_named_error_and_keeps_the_valid_part(make_constraint, views):
    constraint = make_constraint(SMOL, PERSON)
    constraint.sync_to('{"name": "Ada", ')
    bad = '{"name": "Ada", "height": 2}'
    with pytest.raises(GrammarResyncError, match="not a valid prefix"):
        constraint.sync_to(bad)
    assert isinstance(GrammarResyncError("x"), GrammarEngineError)
    # the state is left at the longest accepted prefix, and the member can still sync to a good text
    kept = views[SMOL].decode(constraint.tokens)
    assert bad.startswith(kept) and len(kept) >= len('{"name": "Ada", ')
    constraint.sync_to(DOC)
    assert constraint.end_allowed()


def test_gemma_added_tokens_the_engine_treats_as_special_fall_back_to_bytes(make_constraint, views):
    """Gemma encodes "<h1>" as one added token that the engine treats as special; re-sync falls back to
    the engine's byte-level tokenization of the text and reaches the same state."""
    schema = {"type": "object", "properties": {"html": {"type": "string"}}, "required": ["html"]}
    text = json.dumps({"html": "<h1>Hi</h1>"})
    assert 184 in views[GEMMA].encode(text)
    constraint = make_constraint(GEMMA, schema)
    constraint.sync_to(text)
    assert constraint.end_allowed() and 184 not in constraint.tokens
    constraint.sync_to(text[:5])  # and back: the fallback tokens roll back like any others
    assert constraint.synced_text == text[:5] and not constraint.end_allowed()


def test_compiled_grammars_are_cached_per_tokenizer_and_format(grammar_cache, views):
    fmt = response_format_from({"type": "object", "properties": {"cache_probe": {"type": "boolean"}}})
    same = response_format_from({"type": "json_schema", "json_schema": {"name": "probe", "schema": {"type": "object", "properties": {"cache_probe": {"type": "boolean"}}}}})
    before = grammar_cache.compiles
    for _ in range(3):
        grammar_cache.matcher(views[SMOL].tokenizer, fmt, end_ids(views[SMOL]))
        grammar_cache.matcher(views[SMOL].tokenizer, same, end_ids(views[SMOL]))
    grammar_cache.matcher(views[QWEN].tokenizer, fmt, end_ids(views[QWEN]))
    assert grammar_cache.compiles - before == 2  # once per tokenizer


def test_matchers_from_one_compiled_grammar_are_independent(make_constraint, views):
    a, b = make_constraint(SMOL, PERSON), make_constraint(SMOL, PERSON)
    a.sync_to('{"name": "x"')
    assert b.tokens == [] and bool(b.allowed()[views[SMOL].encode('{"')[0]])


def test_allowed_mask_unpacks_little_endian_bits():
    bits = bytes([0b00000101, 0b10000000])
    assert allowed_mask(bits, 17).nonzero().flatten().tolist() == [0, 2, 15]
