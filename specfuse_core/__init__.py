"""specfuse_core: segment-level ensembling (SpecFuse / SpecEM) of local causal LMs."""

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
    UnsafeCheckpointError,
    UnsupportedFeatureError,
)
from .member import Candidate, Member, MemberSession
from .prompt_format import PlainPromptFormat
from .results import GenerationResult, MemberFault, RoundTrace, SegmentEvent, Trace, Usage

__all__ = [
    "AllMembersFailedError",
    "AsyncGenerationStream",
    "Candidate",
    "ChecksumMismatchError",
    "ContextWindowExceededError",
    "DuplicateMemberError",
    "EnsembleConfig",
    "GenerationResult",
    "GenerationStream",
    "InvalidConversationError",
    "Member",
    "MemberFault",
    "MemberSession",
    "MissingModelPackageError",
    "ModelLoadError",
    "ModelNotFoundError",
    "NoCandidatesError",
    "PlainPromptFormat",
    "PresetNotFoundError",
    "RoundTrace",
    "SegmentEvent",
    "SpecFuse",
    "SpecFuseError",
    "Trace",
    "Usage",
    "UnsafeCheckpointError",
    "UnsupportedFeatureError",
]
