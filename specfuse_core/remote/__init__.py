"""Remote ensemble members over the OpenAI-compatible completions API (see docs/scaling.md).

Needs ``httpx`` and ``tenacity``: ``pip install 'specfuse[remote]'``.
"""

from .config import RemoteMemberConfig
from .errors import (
    RemoteConfigError,
    RemoteMemberError,
    RemotePromptError,
    RemoteProtocolError,
    RemoteRequestError,
    RemoteUnavailableError,
)
from .member import RemoteMember, RemoteSession
from .specs import parse_remote_spec, remote_member

__all__ = [
    "RemoteConfigError",
    "RemoteMember",
    "RemoteMemberConfig",
    "RemoteMemberError",
    "RemotePromptError",
    "RemoteProtocolError",
    "RemoteRequestError",
    "RemoteSession",
    "RemoteUnavailableError",
    "parse_remote_spec",
    "remote_member",
]
