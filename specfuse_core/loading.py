"""Process-wide, thread-safe cache of loaded members, so many ensembles (or adapter instances) built
from the same spec load the weights once."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .model_specs import resolve_model_spec
from .presets import preset_members, resolve_preset_member
from .prompt_format import PlainPromptFormat

if TYPE_CHECKING:  # loading a member needs torch; naming and checking them does not
    from .local.member import Member

_loaded: dict[tuple, "Member"] = {}
_locks: dict[tuple, threading.Lock] = {}
_guard = threading.Lock()


def _key(kind: str, source: str, name: str, kwargs: dict[str, Any]) -> tuple:
    return (kind, source, name, tuple(sorted((k, repr(v)) for k, v in kwargs.items())))


def cached_member(kind: str, source: str, name: str, **kwargs: Any) -> "Member":
    """Load (once per process) a member from a directory/hub id (``kind="pretrained"``), a GGUF file
    (``"gguf"``) or a preset entry (``"preset"``, source = "preset_name/member_name")."""
    key = _key(kind, source, name, kwargs)
    with _guard:
        if key in _loaded:
            return _loaded[key]
        lock = _locks.setdefault(key, threading.Lock())
    with lock:  # one loader per key; other keys load in parallel
        if key not in _loaded:
            _loaded[key] = _load(kind, source, name, kwargs)
        return _loaded[key]


def _load(kind: str, source: str, name: str, kwargs: dict[str, Any]) -> "Member":
    from .local.member import Member

    if kind == "pretrained":
        return Member.from_pretrained(source, name=name, **kwargs)
    if kind == "gguf":
        return Member.from_gguf(source, name=name, **kwargs)
    if kind == "preset":
        preset, member_name = source.split("/", 1)
        entry = next(m for m in preset_members(preset) if m.name == member_name)
        plain = PlainPromptFormat() if entry.plain_prompt else None
        return Member.from_pretrained(resolve_preset_member(entry), name=name, plain_prompt=plain, **kwargs)
    raise ValueError(f"unknown member kind {kind!r}")


def load_preset_members(preset: str, **kwargs: Any) -> list["Member"]:
    return [cached_member("preset", f"{preset}/{m.name}", m.name, **kwargs) for m in preset_members(preset)]


def member_name_for(spec: str) -> str:
    """The member name a model string gets: a GGUF file's stem, else the directory or hub id's last part."""
    path = Path(spec)
    return path.stem if path.suffix == ".gguf" else (path.name or spec)


def check_model_specs(specs: list[str]) -> None:
    """Resolve every member string before anything loads (no network): the first mistake raises
    :class:`~specfuse_core.errors.ModelNotFoundError` saying what was looked for and where."""
    for spec in specs:
        resolve_model_spec(spec)


def model_spec_member(spec: str, **kwargs: Any) -> "Member":
    """A member from a CLI/adapter string: a ``.gguf`` file, or a model directory / hub id
    (checked first by :func:`~specfuse_core.model_specs.resolve_model_spec`)."""
    kind, source = resolve_model_spec(spec)
    return cached_member(kind, source, member_name_for(spec), **kwargs)
