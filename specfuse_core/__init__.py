"""specfuse_core: segment-level ensembling (SpecFuse / SpecEM) of local causal LMs.

Importing the package does not import torch: the transformers member (:class:`Member`, from
:mod:`specfuse_core.local`) loads on first access, so remote-only users never pay for it.
"""

from typing import Any

from .backend import Candidate, Draft, MemberBackend, MemberSession, MemberUsage, Sampling
from .config import EnsembleConfig
from .engine import AsyncGenerationStream, GenerationStream, SpecFuse
from .errors import (
    AllMembersFailedError,
    ChecksumMismatchError,
    ContextWindowExceededError,
    DuplicateMemberError,
    InvalidConversationError,
    MissingModelPackageError,
    ModelLoadError,
    ModelNotFoundError,
    NoCandidatesError,
    PresetNotFoundError,
    SpecFuseError,
    StructuredOutputError,
    UnsafeCheckpointError,
    UnsupportedArgumentError,
    UnsupportedFeatureError,
)
from .prompt_format import PlainPromptFormat
from .results import GenerationResult, MemberFault, RoundTrace, SegmentEvent, Trace, Usage

__all__ = [
    "AllMembersFailedError",
    "AsyncGenerationStream",
    "Candidate",
    "Draft",
    "ChecksumMismatchError",
    "ContextWindowExceededError",
    "DuplicateMemberError",
    "EnsembleConfig",
    "GenerationResult",
    "GenerationStream",
    "InvalidConversationError",
    "Member",
    "MemberBackend",
    "MemberFault",
    "MemberSession",
    "MemberUsage",
    "MissingModelPackageError",
    "ModelLoadError",
    "ModelNotFoundError",
    "NoCandidatesError",
    "PlainPromptFormat",
    "PresetNotFoundError",
    "RoundTrace",
    "Sampling",
    "SegmentEvent",
    "SpecFuse",
    "SpecFuseError",
    "StructuredOutputError",
    "Trace",
    "Usage",
    "UnsafeCheckpointError",
    "UnsupportedArgumentError",
    "UnsupportedFeatureError",
]


def __getattr__(name: str) -> Any:
    """Torch-backed names, imported on first use."""
    if name == "Member":
        from .local.member import Member

        return Member
    raise AttributeError(f"module 'specfuse_core' has no attribute {name!r}")
