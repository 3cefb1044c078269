"""The grammar-engine strategy interface: what constrained drafting needs from an engine, and nothing
more. One backend per engine (:mod:`.llguidance_backend`), chosen in :func:`.factory.grammar_backend`.

A backend turns a tokenizer into an engine vocabulary (once per tokenizer), compiles a
:class:`~.formats.ResponseFormat` against it (cached per tokenizer and format), and makes one
:class:`TokenMatcher` per request and member. The matcher is token-level and engine-specific;
:class:`~.constraint.MemberConstraint` builds the text-level behaviour (re-sync to an accepted text)
on top of it, the same for every engine.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .formats import ResponseFormat
from .limits import SchemaLimits


class TokenMatcher(ABC):
    """Grammar state over one tokenizer's tokens. Methods never leave the state undefined: a
    rejected token is not consumed (the state stays where it was)."""

    vocab_size: int

    @abstractmethod
    def allowed_bits(self) -> bytes:
        """The next token's allowed set, one bit per token id (little-endian within each byte)."""

    @abstractmethod
    def consume(self, token_ids: Sequence[int]) -> int:
        """Advance by as many of ``token_ids`` as the grammar accepts, in order; return how many."""

    @abstractmethod
    def rollback(self, count: int) -> None:
        """Undo the last ``count`` consumed tokens."""

    @abstractmethod
    def is_accepting(self) -> bool:
        """The text so far is a complete match: end of turn is allowed here."""

    @abstractmethod
    def is_stopped(self) -> bool:
        """Nothing but end of turn can follow (a closed JSON document)."""

    @abstractmethod
    def fallback_tokens(self, data: bytes) -> list[int]:
        """A tokenization of ``data`` this engine accepts wherever the bytes are valid, for texts the
        member's own tokenizer spells with tokens the engine treats as special."""


class GrammarBackend(ABC):
    """One grammar engine. ``vocabulary`` is expensive (seconds for a 262k vocabulary) and cached by
    the factory per tokenizer; ``compile`` is cached per (tokenizer, format); ``matcher`` is cheap."""

    name: str

    @abstractmethod
    def vocabulary(self, tokenizer: Any, end_ids: Sequence[int], vocab_size: int | None = None) -> Any:
        """The engine's view of ``tokenizer``; ``end_ids`` are the tokens that end the turn (allowed
        only where the grammar is complete)."""

    @abstractmethod
    def compile(self, fmt: ResponseFormat, vocabulary: Any, limits: SchemaLimits) -> Any:
        """A compiled grammar; raises :class:`~specfuse_core.errors.UnsupportedSchemaError`."""

    @abstractmethod
    def matcher(self, compiled: Any) -> TokenMatcher:
        """A fresh matcher at the start of the output."""


def allowed_mask(bits: bytes, size: int) -> torch.Tensor:
    """A bool tensor of ``size`` entries from a packed bitmask; ids past the mask are disallowed
    (a model's logits can be wider than its tokenizer's vocabulary)."""
    unpacked = np.unpackbits(np.frombuffer(bits, dtype=np.uint8), bitorder="little")
    mask = np.zeros(size, dtype=bool)
    n = min(size, unpacked.shape[0])
    mask[:n] = unpacked[:n]
    return torch.from_numpy(mask)


def mask_logits_(logits: torch.Tensor, bits: bytes) -> torch.Tensor:
    """Set disallowed entries of ``logits`` (``[..., vocab]``) to -inf in place; returns it."""
    allowed = allowed_mask(bits, logits.shape[-1]).to(logits.device)
    return logits.masked_fill_(~allowed, float("-inf"))
