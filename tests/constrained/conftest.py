"""Real tokenizers of the tiny preset and one grammar cache for the whole session (building the
engine's view of Gemma's 262k vocabulary takes seconds; compiled grammars are then cached)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from transformers import AutoTokenizer

from specfuse_core.constrained import GrammarCache, MemberConstraint, ResponseFormat, response_format_from
from specfuse_core.presets import preset_members, resolve_preset_member
from specfuse_core.tokenizer_view import TokenizerView

SMOL, GEMMA, QWEN = "smollm2-135m", "gemma3-270m", "qwen2.5-coder-0.5b"


@pytest.fixture(scope="session")
def tokenizers() -> dict:
    return {m.name: AutoTokenizer.from_pretrained(resolve_preset_member(m)) for m in preset_members("tiny")}


@pytest.fixture(scope="session")
def views(tokenizers) -> dict[str, TokenizerView]:
    return {name: TokenizerView(tok) for name, tok in tokenizers.items()}


def end_ids(view: TokenizerView) -> list[int]:
    """What ends the member's turn under a constraint: its end-of-turn token, else EOS (plain format)."""
    return [view.end_of_turn_id if view.end_of_turn_id is not None else view.tokenizer.eos_token_id]


@pytest.fixture(scope="session")
def grammar_cache() -> GrammarCache:
    return GrammarCache()


@pytest.fixture(scope="session")
def make_constraint(views, grammar_cache) -> Callable[..., MemberConstraint]:
    def make(member: str, spec, limits=None) -> MemberConstraint:
        fmt = spec if isinstance(spec, ResponseFormat) else response_format_from(spec)
        view = views[member]
        return MemberConstraint(grammar_cache.matcher(view.tokenizer, fmt, end_ids(view), limits=limits), view.encode, member)

    return make
