"""Old import path. The member interface lives in :mod:`specfuse_core.backend` (no torch), the
transformers member in :mod:`specfuse_core.local`."""

from .backend import Candidate, Draft, MemberCounters, MemberSession, MemberUsage, Sampling, TextMember, TextSession
from .local.member import Member
from .local.session import LocalSession

__all__ = [
    "Candidate", "Draft", "LocalSession", "Member", "MemberCounters", "MemberSession", "MemberUsage", "Sampling",
    "TextMember", "TextSession",
]
