"""A member's tokenizer and prompt format: the text rules every backend shares.

Local members run the model on these tokens; remote members send text and use the same tokenizer to
render their chat template, count and cut tokens and know what ends their turn. Keeping one copy of
these rules is what makes a local and a remote member of the same model agree.
"""

from __future__ import annotations

import re
import threading
import weakref
from collections.abc import Sequence
from typing import Any

from .messages import Conversation, same_kind, uses_tools
from .prompt_format import PlainPromptFormat, render_prompt
from .utf8_tokens import TokenBytes

# Fast tokenizers are one shared Rust object whose borrow check fails ("Already borrowed") when an encode
# overlaps a settings change from another thread, and requests encode from many threads: one lock per
# tokenizer object (views built around the same tokenizer share it).
_tokenizer_locks: "weakref.WeakKeyDictionary[Any, threading.Lock]" = weakref.WeakKeyDictionary()
_tokenizer_locks_guard = threading.Lock()


def _lock_for(tokenizer: Any) -> threading.Lock:
    with _tokenizer_locks_guard:
        try:
            return _tokenizer_locks.setdefault(tokenizer, threading.Lock())
        except TypeError:  # not weak-referenceable: a lock of its own
            return threading.Lock()


class TokenizerView:
    """Encode, decode and render with one tokenizer, thread-safely.

    ``end_of_turn_id`` is the special token that ends a chat member's turn (``<|im_end|>``) and
    ``end_of_turn_token`` its text; a plain-format member (no chat template) ends its turn with the
    text ``end_of_turn_text`` (``\\n\\nUser:``) instead, and has no ``end_of_turn_id``.
    """

    def __init__(self, tokenizer: Any, plain_prompt: PlainPromptFormat | None = None) -> None:
        self.tokenizer = tokenizer
        self._lock = _lock_for(tokenizer)
        has_template = bool(getattr(tokenizer, "chat_template", None))
        self.plain_prompt = plain_prompt if (plain_prompt is not None or has_template) else PlainPromptFormat()
        self.special_texts = self._find_special_texts()
        self._special_firsts = frozenset(t[0] for t in self.special_texts)
        self.end_of_turn_id, self.end_of_turn_text = self._find_end_of_turn()
        self.end_of_turn_token: str | None = (
            None if self.end_of_turn_id is None else tokenizer.convert_ids_to_tokens(self.end_of_turn_id)
        )
        self.stop_strings: tuple[str, ...] = self.plain_prompt.stop_strings if self.plain_prompt else ()
        self.token_bytes = TokenBytes(tokenizer)  # which drafted tokens keep the text valid UTF-8

    # ------------------------------------------------------------------ text <-> tokens
    def encode(self, text: str) -> list[int]:
        """Tokens of plain text (response, candidates). Special-token strings in it, such as
        "<|im_end|>", stay text: they were written, not meant as control tokens."""
        return self._encode(text, split_special_tokens=True)

    def _encode(self, text: str, split_special_tokens: bool) -> list[int]:
        with self._lock:
            return self.tokenizer(text, add_special_tokens=False, split_special_tokens=split_special_tokens)["input_ids"]

    def decode(self, ids: Sequence[int]) -> str:
        with self._lock:
            return self.tokenizer.decode(list(ids), skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def continuation(self, context: Sequence[int], tokens: Sequence[int], strict: bool = False) -> str | None:
        """Text of ``tokens`` as it reads after ``context``, decoded with a few tokens of left context so
        tokenizers that strip a leading space at the start of a decode do not lose it.

        Byte-fallback tokens (Gemma's ``<0xA0>``) can change how the end of the context decodes: a
        lone continuation byte after a complete ``C2 A0`` makes the decoder replace the whole byte run,
        no-break space included, with U+FFFD. Then no text *follows* the context. ``strict=True``
        returns None in that case; otherwise the tokens are decoded on their own.
        """
        anchor = list(context[-4:])
        head = self.decode(anchor)
        both = self.decode(anchor + list(tokens))
        if both.startswith(head):
            return both[len(head) :]
        return None if strict else self.decode(tokens)

    def render(self, conversation: Conversation) -> str:
        if uses_tools(conversation):  # tools offered, tool calls or results: the template's tools= or the fallback
            from .constrained.tool_prompt import render_with_tools

            return render_with_tools(self.tokenizer, conversation, getattr(conversation, "tools", ()), self.plain_prompt)
        return render_prompt(self.tokenizer, conversation, self.plain_prompt)

    def prompt_ids(self, conversation: Conversation) -> list[int]:
        """The rendered prompt's tokens. The template's special tokens are parsed as such; a message
        that spells one ("<|im_start|>system") keeps it as text, so user text cannot forge a turn."""
        forged = {i for i, m in enumerate(conversation) if self.spells_special(m["content"])}
        if not forged:
            return self._encode(self.render(conversation), split_special_tokens=False)
        marks = {f"\x00SPECFUSE-MESSAGE-{i}\x00": i for i in forged}
        masked = same_kind(conversation, [dict(m, content=f"\x00SPECFUSE-MESSAGE-{i}\x00") if i in forged else m for i, m in enumerate(conversation)])
        ids: list[int] = []
        for piece in re.split("(" + "|".join(re.escape(mark) for mark in marks) + ")", self.render(masked)):
            if piece in marks:
                ids += self._encode(conversation[marks[piece]]["content"], split_special_tokens=True)
            elif piece:
                ids += self._encode(piece, split_special_tokens=False)
        return ids

    def spells_special(self, text: str) -> bool:
        """Whether ``text`` contains a string the tokenizer would parse as a special token."""
        if not any(first in text for first in self._special_firsts):  # cheap: Gemma has 6,000+ of them
            return False
        return any(special in text for special in self.special_texts)

    def longest_prefix_within(self, text: str, max_tokens: int) -> str:
        """The longest prefix of ``text`` that encodes to at most ``max_tokens`` tokens. Cutting the text
        itself (not decoding cut tokens) never outputs characters no member wrote, also where the
        tokenizer normalises text (Qwen2: NFC)."""
        low, high = 0, len(text)
        while low < high:
            middle = (low + high + 1) // 2
            if len(self.encode(text[:middle])) <= max_tokens:
                low = middle
            else:
                high = middle - 1
        return text[:low]

    # ------------------------------------------------------------------ what the tokenizer knows
    def _find_special_texts(self) -> tuple[str, ...]:
        """Strings the tokenizer turns into special tokens when it parses them (``<|im_end|>``, ``<eos>``)."""
        texts = set(getattr(self.tokenizer, "all_special_tokens", []) or [])
        texts |= {str(tok) for tok in getattr(self.tokenizer, "added_tokens_decoder", {}).values() if getattr(tok, "special", False)}
        return tuple(sorted((t for t in texts if t), key=len, reverse=True))

    def _find_end_of_turn(self) -> tuple[int | None, str | None]:
        """The token (chat models) or text (plain format) that ends this member's turn: the first
        special token the chat template writes after an assistant message, else EOS."""
        if self.plain_prompt is not None:
            return None, self.plain_prompt.separator + self.plain_prompt.user_prefix.rstrip()
        sentinel = "\x00SPECFUSE\x00"
        rendered = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": "hi"}, {"role": "assistant", "content": sentinel}], tokenize=False
        )
        after = rendered.split(sentinel, 1)[1] if sentinel in rendered else ""
        special = set(self.tokenizer.all_special_ids) | {
            tid for tid, tok in getattr(self.tokenizer, "added_tokens_decoder", {}).items() if tok.special
        }
        for token_id in self._encode(after, split_special_tokens=False):
            if token_id in special:
                return token_id, None
        return self.tokenizer.eos_token_id, None

