"""What a member string (``--model``, ``models=[...]``) names, checked before any weights load.

A member is a ``.gguf`` file, a transformers model directory (with ``config.json``) or a hub id. Each
mistake gets one :class:`ModelNotFoundError` that says what was looked for and where, instead of the
hub's validation or connection errors, a ``FileNotFoundError`` or a tokenizer-conversion message.
Nothing here touches the network: a hub id that is not cached is accepted while the hub is reachable
(the download may still fail; :func:`hub_load_error` then names the cause in one line).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from .errors import ModelNotFoundError

SpecKind = Literal["gguf", "pretrained"]
_OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def hub_offline() -> bool:
    """Whether the Hugging Face hub is switched off (``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``)."""
    return any(os.environ.get(v, "").strip().lower() in {"1", "on", "yes", "true"} for v in _OFFLINE_VARIABLES)


def hub_cache_dir() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def _looks_like_path(text: str) -> bool:
    """Hub ids are ``name`` or ``org/name``; anything else with a path shape is meant as a path."""
    return (
        text.startswith(("/", "~", "./", "../", ".\\", "..\\"))
        or "\\" in text
        or text.count("/") > 1
        or (len(text) > 1 and text[1] == ":")  # C:\...
    )


def resolve_model_spec(spec: str | os.PathLike[str]) -> tuple[SpecKind, str]:
    """``(kind, source)`` for a member string: ``("gguf", file)`` or ``("pretrained", dir_or_hub_id)``.

    Raises :class:`ModelNotFoundError` for a missing path, a directory that is not a model directory, a
    missing ``.gguf`` file, a string that is neither a path nor a hub id, and a hub id that is not in
    the local cache while the hub is offline.
    """
    text = os.fspath(spec).strip() if isinstance(spec, (str, os.PathLike)) else ""
    if not text:
        raise ModelNotFoundError(str(spec), "a member needs a .gguf file, a model directory or a hub id, got an empty string")
    path = Path(text).expanduser()
    if path.suffix.lower() == ".gguf":
        if path.is_file():
            return "gguf", str(path)
        where = "is a directory, not a file" if path.is_dir() else "does not exist"
        raise ModelNotFoundError(text, f"GGUF file {path.absolute()} {where}")
    if path.is_dir():
        if (path / "config.json").is_file():
            return "pretrained", str(path)
        ggufs = sorted(p.name for p in path.glob("*.gguf"))
        hint = (
            f"; it holds {ggufs[0]}: pass that file" if ggufs
            else "; a model directory holds config.json, tokenizer files and *.safetensors weights"
        )
        raise ModelNotFoundError(text, f"{path.absolute()} is not a model directory (no config.json){hint}")
    if path.exists():
        raise ModelNotFoundError(text, f"{path.absolute()} is a file but not a .gguf file; pass a .gguf file or a model directory")
    if _looks_like_path(text):
        raise ModelNotFoundError(text, f"path {path.absolute()} does not exist")
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(text)
    except HFValidationError:
        raise ModelNotFoundError(
            text, f"no file or directory {path.absolute()}, and {text!r} is not a hub id (org/name)"
        ) from None
    if isinstance(try_to_load_from_cache(text, "config.json"), str):
        return "pretrained", text
    if hub_offline():
        raise ModelNotFoundError(
            text,
            f"no file or directory {path.absolute()}, and hub id {text!r} is not in the local cache "
            f"({hub_cache_dir()}) while the hub is offline (HF_HUB_OFFLINE); download it first, or pass a local path",
        )
    return "pretrained", text


def check_hub_reachable(spec: str) -> None:
    """Before downloading an uncached hub id: one name lookup of the hub's host, so a machine without
    a network learns it at once instead of after minutes of retries."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.getaddrinfo(host, 443)
    except OSError as error:
        raise ModelNotFoundError(
            spec,
            f"no local path {Path(spec).absolute()}, and hub id {spec!r} is not in the local cache "
            f"({hub_cache_dir()}) and the hub ({host}) cannot be reached ({error.strerror or error}); "
            "download it on a connected machine first, or pass a local path",
        ) from None


def hub_load_error(spec: str, error: BaseException) -> ModelNotFoundError:
    """One line for a hub id that could not be loaded (not cached, no connection, no such repository)."""
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return ModelNotFoundError(
        spec,
        f"no local path {Path(spec).absolute()}, and hub id {spec!r} is not in the local cache ({hub_cache_dir()}) "
        f"and could not be downloaded: {reason}. Set HF_HUB_OFFLINE=1 to fail at once without a network",
    )
