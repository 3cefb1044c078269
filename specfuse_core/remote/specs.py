"""``URL,MODEL[,TOKENIZER]`` strings (the CLI's ``--remote``) to remote members."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from .config import RemoteMemberConfig
from .errors import RemoteConfigError
from .member import RemoteMember


def parse_remote_spec(spec: str, **settings: Any) -> RemoteMemberConfig:
    """``http://host:8000,my-model[,/path/to/tokenizer]``; other fields of
    :class:`RemoteMemberConfig` come from ``settings``."""
    parts = [p.strip() for p in spec.split(",")]
    if len(parts) not in (2, 3) or not all(parts):
        raise RemoteConfigError(
            f"--remote expects URL,MODEL or URL,MODEL,TOKENIZER (e.g. http://127.0.0.1:8000,smollm2,./tok), got {spec!r}"
        )
    fields = {"base_url": parts[0], "model": parts[1], **settings}
    if len(parts) == 3:
        fields["tokenizer"] = parts[2]
    try:
        return RemoteMemberConfig(**fields)
    except ValidationError as error:
        reasons = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise RemoteConfigError(f"invalid --remote {spec!r}: {reasons}") from None


def remote_member(spec: str, **settings: Any) -> RemoteMember:
    return RemoteMember(parse_remote_spec(spec, **settings))
