"""A scripted ensemble for adapter tests that need no weights: each member drafts the next segment of
its script (one character = one token), so a request has several rounds and takes milliseconds."""

from __future__ import annotations

from collections.abc import Sequence

from specfuse_core import EnsembleConfig, SpecFuse
from specfuse_core.member import Candidate, Draft, MemberCounters, MemberSession


class ScriptedMember:
    device = "cpu"
    context_window = 4096

    def __init__(self, name: str, segments: Sequence[str]) -> None:
        self.name = name
        self.segments = list(segments)
        self.formats: list = []  # the grammars requests asked this member to draft under
        self.conversations: list = []

    def encode(self, text: str) -> list[int]:
        return [ord(c) for c in text]

    def prompt_ids(self, conversation: list[dict[str, str]]) -> list[int]:
        return self.encode("".join(f"<{m['role']}>{m['content']}" for m in conversation) + "<assistant>")

    def start(self, conversation, chooser, reserved: int = 0) -> "ScriptedSession":
        self.conversations.append(conversation)
        return ScriptedSession(self, len(self.prompt_ids(conversation)))


class ScriptedSession(MemberSession):
    def __init__(self, member: ScriptedMember, prompt_tokens: int) -> None:
        self.member, self.name, self.counters = member, member.name, MemberCounters()
        self._prompt_tokens, self.rounds, self.response = prompt_tokens, 0, ""

    @property
    def prompt_tokens(self) -> int:
        return self._prompt_tokens

    @property
    def context_tokens(self) -> int:
        return self._prompt_tokens + len(self.response)

    def draft(self, response: str, max_tokens: int, align: bool = True) -> Draft:
        index, self.rounds = self.rounds, self.rounds + 1
        if index >= len(self.member.segments):
            return Draft("", True)
        return Draft(self.member.segments[index], index == len(self.member.segments) - 1, 1)

    def score(self, response: str, candidates: Sequence[Candidate], statistic: str = "mean") -> list[float]:
        return [0.0] * len(candidates)

    def accept(self, response: str, winner, own_draft: bool) -> None:
        self.response = response

    def count_tokens(self, response: str) -> int:
        return len(response)

    def truncate(self, response: str, max_tokens: int) -> str:
        return response[:max_tokens]

    def close(self) -> None:
        pass

    def constrain(self, fmt) -> bool:
        """Scripts stand for constrained drafts (the core's final check still validates them)."""
        self.member.formats.append(fmt)
        return True


SEGMENTS = ["The sea ", "is wide ", "and deep."]


def scripted_model(**fields):
    """A ChatSpecFuse whose ensemble is two scripted members agreeing on :data:`SEGMENTS`."""
    from langchain_specfuse import ChatSpecFuse

    return ChatSpecFuse(ensemble=SpecFuse([ScriptedMember("a", SEGMENTS), ScriptedMember("b", SEGMENTS)], EnsembleConfig()), **fields)
