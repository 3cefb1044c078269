"""Which next tokens keep a draft valid UTF-8.

Byte-level tokenizers (GPT-2's byte alphabet: SmolLM2, Qwen) and byte-fallback ones (``<0x80>``:
Gemma) can spell a lone byte. A sampled token, or a weak model's greedy one, may be a continuation
byte with no character to continue, or break a character off half-way: the text then holds a U+FFFD
that no later token mends. Checking the one token a chooser picked against the bytes still pending is
cheap, so a draft can pick its next-best token instead (the way a grammar mask would, for one rule).
"""

from __future__ import annotations

import codecs
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch only where a mask is built: remote members run without it
    import torch

_BYTE_FALLBACK = re.compile(r"<0x([0-9A-Fa-f]{2})>\Z")


def _byte_alphabet() -> dict[str, int]:
    """GPT-2's byte-level alphabet: printable bytes stand for themselves, the rest for chr(256 + n)."""
    printed = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    table = {chr(b): b for b in printed}
    table.update({chr(256 + n): b for n, b in enumerate(b for b in range(256) if b not in printed)})
    return table


class TokenBytes:
    """The bytes each token of one tokenizer spells in a decoded text; ``scheme`` None: unknown, unchecked."""

    def __init__(self, tokenizer: Any) -> None:
        decoder = repr(getattr(getattr(tokenizer, "backend_tokenizer", None), "decoder", None))
        self.scheme = "byte_level" if decoder.startswith("ByteLevel") else "byte_fallback" if "ByteFallback" in decoder else None
        self._tokenizer = tokenizer
        self._alphabet = _byte_alphabet() if self.scheme == "byte_level" else {}
        self._special = frozenset(getattr(tokenizer, "all_special_ids", ()))
        self._added = {i: t.content for i, t in getattr(tokenizer, "added_tokens_decoder", {}).items()}
        self._cache: dict[int, bytes] = {}
        self._table: tuple[torch.Tensor, torch.Tensor] | None = None

    def of(self, token_id: int) -> bytes:
        """What ``token_id`` adds to a decoded text, as bytes (special tokens add nothing)."""
        cached = self._cache.get(token_id)
        if cached is None:
            cached = self._cache[token_id] = self._spell(token_id)
        return cached

    def _spell(self, token_id: int) -> bytes:
        if token_id in self._special:
            return b""
        if token_id in self._added:
            return self._added[token_id].encode("utf-8")
        piece = self._tokenizer.convert_ids_to_tokens(token_id)
        if not isinstance(piece, str):
            return b""
        if self.scheme == "byte_level":
            if all(c in self._alphabet for c in piece):
                return bytes(self._alphabet[c] for c in piece)
            return piece.encode("utf-8")
        match = _BYTE_FALLBACK.match(piece)
        return bytes([int(match.group(1), 16)]) if match else piece.replace("\u2581", " ").encode("utf-8")

    def allowed_after(self, pending: bytes, size: int) -> torch.Tensor:
        """A mask over ``size`` token ids: those that may follow ``pending`` (built once per tokenizer,
        the first time a pick had to be refused). It screens by byte class; :meth:`follows` has the
        last word (it also refuses overlong forms and surrogates)."""
        if self._table is None or self._table[0].numel() < size:
            self._table = self._build_table(size)
        leading, tail_ok = self._table
        needed = _still_needed(pending)
        return ((leading[:size] == needed) & tail_ok[:size]) | self._special_mask(size)

    def _build_table(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Per token: how many continuation bytes it starts with, and whether the rest begins valid UTF-8."""
        import torch

        leading = torch.zeros(size, dtype=torch.int8)
        tail_ok = torch.zeros(size, dtype=torch.bool)
        for token_id in range(size):
            spelled = self.of(token_id)
            count = next((i for i, b in enumerate(spelled) if not 0x80 <= b <= 0xBF), len(spelled))
            leading[token_id] = min(count, 4)
            tail_ok[token_id] = _valid_start(spelled[count:])
        return leading, tail_ok

    def _special_mask(self, size: int) -> torch.Tensor:
        import torch

        mask = torch.zeros(size, dtype=torch.bool)
        ids = [i for i in self._special if i < size]
        mask[ids] = True
        return mask

    def follows(self, pending: bytes, token_id: int) -> bytes | None:
        """The bytes of an unfinished character after ``token_id`` follows ``pending`` (the unfinished
        character before it), or None when together they can never be valid UTF-8."""
        decoder = codecs.getincrementaldecoder("utf-8")("strict")
        try:
            decoder.decode(pending + self.of(token_id), final=False)
        except UnicodeDecodeError:
            return None
        return decoder.getstate()[0]


def _valid_start(data: bytes) -> bool:
    """Whether ``data`` is valid UTF-8 or the start of it."""
    try:
        codecs.getincrementaldecoder("utf-8")("strict").decode(data, final=False)
    except UnicodeDecodeError:
        return False
    return True


def _still_needed(pending: bytes) -> int:
    """Continuation bytes the unfinished character ``pending`` still needs (0: none pending)."""
    if not pending:
        return 0
    lead = pending[0]
    length = 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4
    return max(length - len(pending), 0)
