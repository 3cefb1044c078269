"""The local half of a remote member: its tokenizer and chat template.

The server tokenises the prompt text it receives; this copy of the same tokenizer renders the
member's prompt, counts and truncates tokens (max_new_tokens, context windows) and knows which text
ends the member's turn. It must be the tokenizer of the served model.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from ..messages import Conversation
from ..prompt_format import PlainPromptFormat, render_prompt
from .errors import RemoteConfigError


def load_tokenizer(spec: str, chat_template: str | None = None) -> Any:
    """A transformers tokenizer from a directory, a ``tokenizer.json``, a ``.gguf`` file, or a hub id that
    is already in the local cache (nothing is downloaded)."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    path = Path(spec).expanduser()
    try:
        if path.is_file() and path.suffix == ".gguf":
            tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        elif path.is_file() and path.suffix == ".json":
            tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(path))
        elif path.is_dir():
            tokenizer = AutoTokenizer.from_pretrained(str(path))
        else:
            tokenizer = AutoTokenizer.from_pretrained(spec, local_files_only=True)
    except (OSError, ValueError) as error:
        raise RemoteConfigError(
            f"cannot load a tokenizer from {spec!r} ({type(error).__name__}: {error}). Name the served model's "
            "tokenizer: a directory with tokenizer.json, a tokenizer.json file or the model's .gguf file"
        ) from error
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    return tokenizer


class TokenizerView:
    """Encode/decode/render with one tokenizer, serialised by a lock (fast tokenizers are not safe to
    share across threads, and rounds run members in a thread pool)."""

    def __init__(self, tokenizer: Any, plain_prompt: PlainPromptFormat | None = None) -> None:
        self.tokenizer = tokenizer
        self._lock = threading.Lock()
        has_template = bool(getattr(tokenizer, "chat_template", None))
        self.plain_prompt = plain_prompt if (plain_prompt is not None or has_template) else PlainPromptFormat()
        self.special_texts = self._find_special_texts()
        self.end_of_turn_text, self.ends_with_special = self._find_end_of_turn()
        self.stop_strings: tuple[str, ...] = self.plain_prompt.stop_strings if self.plain_prompt else ()

    def encode(self, text: str) -> list[int]:
        """Plain text (response, candidates): special-token spellings stay text."""
        with self._lock:
            return self.tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]

    def decode(self, ids: list[int]) -> str:
        with self._lock:
            return self.tokenizer.decode(list(ids), skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def render(self, conversation: Conversation) -> str:
        with self._lock:
            return render_prompt(self.tokenizer, conversation, self.plain_prompt)

    def prompt_ids(self, conversation: Conversation) -> list[int]:
        text = self.render(conversation)
        with self._lock:
            return self.tokenizer(text, add_special_tokens=False, split_special_tokens=False)["input_ids"]

    def spells_special(self, text: str) -> bool:
        return any(special in text for special in self.special_texts)

    def _find_special_texts(self) -> tuple[str, ...]:
        texts = set(getattr(self.tokenizer, "all_special_tokens", []) or [])
        texts |= {str(t) for t in getattr(self.tokenizer, "added_tokens_decoder", {}).values() if getattr(t, "special", False)}
        return tuple(sorted((t for t in texts if t), key=len, reverse=True))

    def _find_end_of_turn(self) -> tuple[str, bool]:
        """The text that ends this member's turn, and whether it is one special token (chat models:
        ``<|im_end|>``) or plain text (plain format: ``\\n\\nUser:``). Same rule as a local member."""
        if self.plain_prompt is not None:
            return self.plain_prompt.separator + self.plain_prompt.user_prefix.rstrip(), False
        sentinel = "\x00SPECFUSE\x00"
        rendered = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": "hi"}, {"role": "assistant", "content": sentinel}], tokenize=False
        )
        after = rendered.split(sentinel, 1)[1] if sentinel in rendered else ""
        special_ids = set(self.tokenizer.all_special_ids) | {
            tid for tid, tok in getattr(self.tokenizer, "added_tokens_decoder", {}).items() if tok.special
        }
        for token_id in self.tokenizer(after, add_special_tokens=False)["input_ids"]:
            if token_id in special_ids:
                return self.tokenizer.convert_ids_to_tokens(token_id), True
        eos = self.tokenizer.eos_token
        if not eos:
            raise RemoteConfigError("the tokenizer has a chat template but no end-of-turn or EOS token")
        return eos, True
