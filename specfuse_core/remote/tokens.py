"""The local half of a remote member: loading its tokenizer (wrapped in the core's TokenizerView).

The server tokenises the prompt text it receives; this copy of the same tokenizer renders the
member's prompt, counts and truncates tokens (max_new_tokens, context windows) and knows which text
ends the member's turn. It must be the tokenizer of the served model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
