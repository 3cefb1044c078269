"""The llguidance grammar engine (chosen by measurement: docs/performance.md, "Grammar engines").

llguidance matches bytes, not tokens, so one grammar means the same thing under every tokenizer, and
the members' candidates, drafted over different vocabularies, are valid prefixes of the same
language. It never raises on grammar or token errors (it enters an error state), and bounds its
own work with fuel limits, so a hostile grammar costs a bounded compile and a named error.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import GrammarEngineError, UnsupportedFeatureError, UnsupportedSchemaError
from .formats import JSON_LAYOUT, ResponseFormat
from .grammar import GrammarBackend, TokenMatcher
from .limits import SchemaLimits


def _llguidance():
    try:
        import llguidance
        import llguidance.hf  # noqa: F401  (registers the submodule)
    except ImportError as error:  # pragma: no cover - exercised only without the extra
        raise UnsupportedFeatureError(
            "structured output and tool calling need the grammar engine: pip install 'specfuse[structured]'"
        ) from error
    return llguidance


@dataclass(frozen=True)
class LlguidanceVocabulary:
    """The engine tokenizer, plus the added tokens it treats as special although the Hugging Face
    tokenizer does not (Qwen2.5's ``<tool_call>``, Gemma's ``<h1>``): grammars that expect such a
    text name the token explicitly, or the member could never write it with its own tokenizer."""

    tokenizer: Any
    added_as_special: dict[str, int]


@dataclass(frozen=True)
class LlguidanceGrammar:
    """A compiled grammar: a pristine matcher that new matchers are copied from (cheap)."""

    vocabulary: LlguidanceVocabulary
    pristine: Any


class LlguidanceMatcher(TokenMatcher):
    def __init__(self, matcher: Any, tokenizer: Any) -> None:
        self._m = matcher
        self._tokenizer = tokenizer
        self.vocab_size = tokenizer.vocab_size

    def _check(self) -> None:
        if self._m.is_error():
            raise GrammarEngineError(f"grammar matcher failed: {self._m.get_error()[:500]}")

    def allowed_bits(self) -> bytes:
        bits = self._m.compute_bitmask()
        self._check()
        return bits

    def consume(self, token_ids: Sequence[int]) -> int:
        if not token_ids:
            return 0
        count = self._m.try_consume_tokens(list(token_ids))
        self._check()
        return count

    def rollback(self, count: int) -> None:
        if count and not self._m.rollback(count):
            self._check()
            raise GrammarEngineError(f"grammar matcher could not roll back {count} tokens")

    def is_accepting(self) -> bool:
        return self._m.is_accepting()

    def is_stopped(self) -> bool:
        return self._m.is_stopped()

    def fallback_tokens(self, text: str) -> list[int]:
        return list(self._tokenizer.greedy_tokenize(text))


class LlguidanceBackend(GrammarBackend):
    name = "llguidance"

    def __init__(self) -> None:
        self._ll = _llguidance()
        # verbose_errors off: error texts would otherwise quote the schema and parser state into logs
        self._limits = self._ll.LLParserLimits(verbose_errors=False)

    def vocabulary(self, tokenizer: Any, end_ids: Sequence[int], vocab_size: int | None = None) -> LlguidanceVocabulary:
        ll_tokenizer = self._ll.hf.from_tokenizer(tokenizer, n_vocab=vocab_size, eos_token=list(end_ids))
        added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
        as_special = {
            str(tok): tid for tid, tok in added.items()
            if not getattr(tok, "special", False) and tid < ll_tokenizer.vocab_size and ll_tokenizer.is_special_token(tid)
        }
        return LlguidanceVocabulary(ll_tokenizer, as_special)

    def grammar_text(self, fmt: ResponseFormat, vocabulary: LlguidanceVocabulary) -> str:
        """The engine's grammar for ``fmt`` under this vocabulary."""
        matcher = self._ll.LLMatcher
        if fmt.kind in ("json_schema", "json_object"):
            return matcher.grammar_from_json_schema(fmt.source, overrides=dict(JSON_LAYOUT))
        if fmt.kind == "regex":
            return matcher.grammar_from_regex(fmt.source)
        if fmt.kind == "lark":
            return matcher.grammar_from_lark(fmt.source)
        if fmt.kind == "tools":
            from .tools import ToolsConstraint

            return matcher.grammar_from_lark(ToolsConstraint.from_source(fmt.source).lark(vocabulary.added_as_special))
        raise UnsupportedSchemaError(f"no grammar for response format kind {fmt.kind!r}")

    def compile(self, fmt: ResponseFormat, vocabulary: LlguidanceVocabulary, limits: SchemaLimits) -> LlguidanceGrammar:
        start = time.perf_counter()
        try:
            grammar = self.grammar_text(fmt, vocabulary)
        except ValueError as error:
            raise UnsupportedSchemaError(f"the grammar engine rejects the {fmt.kind}: {error}") from None
        pristine = self._ll.LLMatcher(vocabulary.tokenizer, grammar, log_level=0, limits=self._limits)
        if pristine.is_error():
            raise UnsupportedSchemaError(f"the grammar engine rejects the {fmt.kind}: {pristine.get_error()[:500]}")
        pristine.compute_bitmask()  # builds the lexer's first states: the costly part of a big grammar
        if pristine.is_error():
            raise UnsupportedSchemaError(f"the grammar engine rejects the {fmt.kind}: {pristine.get_error()[:500]}")
        elapsed = time.perf_counter() - start
        if elapsed > limits.max_compile_seconds:
            raise UnsupportedSchemaError(
                f"compiling the {fmt.kind} took {elapsed:.2f} s, over the limit of {limits.max_compile_seconds} s "
                f"(SchemaLimits.max_compile_seconds)"
            )
        return LlguidanceGrammar(vocabulary, pristine)

    def matcher(self, compiled: LlguidanceGrammar) -> LlguidanceMatcher:
        return LlguidanceMatcher(compiled.pristine.deep_copy(), compiled.vocabulary.tokenizer)
