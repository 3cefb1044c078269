"""One member's grammar state during one request, at the level the drafting loop works: mask the
next token's logits, accept the drafted token, and re-sync to the accepted response text.

Why re-sync works across tokenizers: the engine matches bytes, so the state after a text does not
depend on how the text was cut into tokens. After a round the member's own tokenization of the new
response is consumed, reusing the longest prefix of tokens already consumed (rolled back past it,
as the KV cache is). Two cases need a rule:

* The text ends mid-token (the winner stopped inside what this tokenizer would spell as one
  token): nothing special. The state is that of the text's bytes; the next mask allows exactly the
  tokens that continue them.
* The member's tokenization holds a token the engine treats as special although it is plain text to
  the tokenizer (Gemma's ``<h1>``): the whole text is consumed in the engine's byte-level
  tokenization instead. If that is rejected too, the text is not a valid prefix of the grammar:
  :class:`~specfuse_core.errors.GrammarResyncError`, with the state left at the longest accepted
  prefix (a member fault for the engine; the other members go on).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ..errors import GrammarEngineError, GrammarResyncError
from .grammar import TokenMatcher, allowed_mask, mask_logits_


class MemberConstraint:
    """``encode`` is the member's own text -> tokens (``TokenizerView.encode``: no special tokens
    parsed). ``synced_text`` is the last response text synced to; tokens accepted since follow it."""

    def __init__(self, matcher: TokenMatcher, encode: Callable[[str], list[int]], member: str = "member") -> None:
        self.matcher = matcher
        self.encode = encode
        self.member = member
        self.tokens: list[int] = []  # every token the matcher has consumed, in order
        self.synced_text = ""

    # ------------------------------------------------------------------ drafting
    def allowed(self, size: int | None = None) -> torch.Tensor:
        """Bool mask of the tokens allowed next (``size`` defaults to the engine's vocabulary)."""
        return allowed_mask(self.matcher.allowed_bits(), size or self.matcher.vocab_size)

    def mask_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """Disallowed entries of ``logits`` (``[..., vocab]``) to -inf, in place."""
        return mask_logits_(logits, self.matcher.allowed_bits())

    def accept_token(self, token_id: int) -> None:
        """Advance by one drafted token; a token the mask did not allow is a member fault."""
        if self.matcher.consume([token_id]) != 1:
            raise GrammarEngineError(f"member {self.member!r} drafted token {token_id}, which the grammar rejects")
        self.tokens.append(token_id)

    def end_allowed(self) -> bool:
        """End of turn is allowed only where the grammar is complete."""
        return self.matcher.is_accepting()

    def is_complete(self) -> bool:
        """Only end of turn can follow: drafting should stop here."""
        return self.matcher.is_stopped()

    # ------------------------------------------------------------------ after a round
    def sync_to(self, text: str) -> None:
        """Reach the state after the full response ``text`` (see the module docstring)."""
        target = self.encode(text)
        keep = _common_prefix(self.tokens, target)
        self._truncate(keep)
        taken = self._consume(target[keep:])
        if taken == len(target) - keep:
            self.synced_text = text
            return
        # A token the engine will not take: the engine's own byte-level tokenization of the whole
        # text instead (linear in the text, and only for texts holding such a token).
        self._truncate(0)
        fallback = self.matcher.fallback_tokens(text)
        taken = self._consume(fallback)
        if taken != len(fallback):
            raise GrammarResyncError(
                f"member {self.member!r}: the accepted text is not a valid prefix of the grammar "
                f"(rejected after {taken} of {len(fallback)} tokens)"
            )
        self.synced_text = text

    def _consume(self, ids: Sequence[int]) -> int:
        taken = self.matcher.consume(ids)
        self.tokens.extend(ids[:taken])
        return taken

    def _truncate(self, keep: int) -> None:
        if len(self.tokens) > keep:
            self.matcher.rollback(len(self.tokens) - keep)
            del self.tokens[keep:]


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n
