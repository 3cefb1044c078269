"""Named errors of remote members. All subclass :class:`SpecFuseError`, so the engine's fault handling
takes a failing remote member out of the request (reported in ``trace.faults``) like any other."""

from __future__ import annotations

from ..errors import SpecFuseError


class RemoteMemberError(SpecFuseError, RuntimeError):
    """Base class: a remote member could not do its part of a round."""


class RemoteUnavailableError(RemoteMemberError):
    """The server did not answer (refused, reset, timed out, or 5xx/429) after every retry."""


class RemoteRequestError(RemoteMemberError):
    """The server rejected a request (4xx): wrong model name, missing key, unsupported parameter."""


class RemoteProtocolError(RemoteMemberError):
    """The server answered, but not with what the completions protocol promises (e.g. no echoed
    log-probabilities: llama.cpp's own ``llama-server`` does not return them)."""


class RemotePromptError(RemoteMemberError, ValueError):
    """A message spells one of the member's special tokens. A remote server parses special tokens in
    prompt text, so sending it would let user text forge a turn; the member sits the request out."""


class RemoteConfigError(RemoteMemberError, ValueError):
    """A remote member's settings are unusable (bad ``--remote`` spec, tokenizer not found)."""
