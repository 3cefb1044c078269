"""The one place that picks the grammar engine, and the caches that make per-request use cheap:
engine vocabularies per tokenizer (seconds to build) and compiled grammars per (tokenizer, format)."""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from .formats import ResponseFormat
from .grammar import GrammarBackend, TokenMatcher
from .limits import SchemaLimits

_BACKENDS: dict[str, Callable[[], GrammarBackend]] = {}


def _llguidance() -> GrammarBackend:
    from .llguidance_backend import LlguidanceBackend

    return LlguidanceBackend()


_BACKENDS["llguidance"] = _llguidance
DEFAULT_BACKEND = "llguidance"


def grammar_backend(name: str = DEFAULT_BACKEND) -> GrammarBackend:
    """The named grammar engine (only llguidance today; see docs/performance.md for why)."""
    try:
        return _BACKENDS[name]()
    except KeyError:
        raise ValueError(f"unknown grammar backend {name!r}; known: {sorted(_BACKENDS)}") from None


class GrammarCache:
    """Compiled grammars for one backend, per tokenizer object and format. Tokenizers are held
    weakly (a member that goes away takes its grammars with it); each tokenizer keeps at most
    ``max_formats`` formats, least recently used dropped first. Thread-safe; one compile per key."""

    def __init__(self, backend: GrammarBackend | None = None, max_formats: int = 64) -> None:
        self.backend = backend or grammar_backend()
        self.max_formats = max_formats
        self._entries: "weakref.WeakKeyDictionary[Any, dict]" = weakref.WeakKeyDictionary()
        self._guard = threading.Lock()
        self.compiles = 0  # how many compiles ran (tests and stats)

    def _slot(self, tokenizer: Any) -> dict:
        with self._guard:
            slot = self._entries.get(tokenizer)
            if slot is None:
                slot = {"lock": threading.Lock(), "vocab": {}, "grammars": OrderedDict()}
                self._entries[tokenizer] = slot
            return slot

    def vocabulary(self, tokenizer: Any, end_ids: Sequence[int], vocab_size: int | None = None) -> Any:
        slot = self._slot(tokenizer)
        key = (tuple(end_ids), vocab_size)
        with slot["lock"]:
            if key not in slot["vocab"]:
                slot["vocab"][key] = self.backend.vocabulary(tokenizer, end_ids, vocab_size)
            return slot["vocab"][key]

    def compiled(self, tokenizer: Any, fmt: ResponseFormat, end_ids: Sequence[int], vocab_size: int | None = None,
                 limits: SchemaLimits | None = None) -> Any:
        vocabulary = self.vocabulary(tokenizer, end_ids, vocab_size)
        slot = self._slot(tokenizer)
        key = (fmt.key, tuple(end_ids), vocab_size)
        with slot["lock"]:
            grammars: OrderedDict = slot["grammars"]
            if key in grammars:
                grammars.move_to_end(key)
                return grammars[key]
            compiled = self.backend.compile(fmt, vocabulary, limits or SchemaLimits())
            self.compiles += 1
            grammars[key] = compiled
            while len(grammars) > self.max_formats:
                grammars.popitem(last=False)
            return compiled

    def matcher(self, tokenizer: Any, fmt: ResponseFormat, end_ids: Sequence[int], vocab_size: int | None = None,
                limits: SchemaLimits | None = None) -> TokenMatcher:
        """A fresh matcher for one request and member."""
        return self.backend.matcher(self.compiled(tokenizer, fmt, end_ids, vocab_size, limits))


_shared: GrammarCache | None = None
_shared_guard = threading.Lock()


def shared_grammar_cache() -> GrammarCache:
    """The process-wide cache (members loaded once per process share their grammars too)."""
    global _shared
    with _shared_guard:
        if _shared is None:
            _shared = GrammarCache()
        return _shared
