"""A scripted stand-in for a specfuse member: no weights, deterministic, instant.

Each fake member "drafts" the next ``segment_tokens`` characters of its script (one character = one
token) and scores candidates by how well they match its script. It records every conversation it is
started with, so tests can check exactly what the adapter hands the core.
"""

from __future__ import annotations

from collections.abc import Sequence

from specfuse_core.errors import ContextWindowExceededError
from specfuse_core.messages import same_kind
from specfuse_core.member import Candidate, Draft, MemberCounters, MemberSession


class ScriptedMember:
    device = "cpu"

    def __init__(self, name: str, script: str, context_window: int = 4096) -> None:
        self.name = name
        self.script = script
        self.formats: list = []
        self.context_window = context_window
        self.conversations: list[list[dict[str, str]]] = []
        self.closed = 0  # sessions closed (the core closes each request's sessions once done)

    # the few Member methods the core uses
    def encode(self, text: str) -> list[int]:
        return [ord(c) for c in text]

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(chr(i) for i in ids)

    def render(self, conversation: list[dict[str, str]]) -> str:
        return "".join(f"<{m['role']}>{m['content']}" for m in conversation) + "<assistant>"

    def prompt_ids(self, conversation: list[dict[str, str]]) -> list[int]:
        return self.encode(self.render(conversation))

    def describe(self) -> dict:
        return {"name": self.name, "context_window": self.context_window}

    def start(self, conversation, chooser, reserved: int = 0) -> "ScriptedSession":
        prompt = self.prompt_ids(conversation)
        if len(prompt) + reserved >= self.context_window:
            raise ContextWindowExceededError(self.name, len(prompt), self.context_window, reserved)
        self.conversations.append(same_kind(conversation, [dict(m) for m in conversation]))  # tools kept
        return ScriptedSession(self, len(prompt))


class ScriptedSession(MemberSession):
    def __init__(self, member: ScriptedMember, prompt_tokens: int) -> None:
        self.member = member
        self.name = member.name
        self.counters = MemberCounters()
        self._prompt_tokens = prompt_tokens
        self.response = ""

    @property
    def prompt_tokens(self) -> int:
        return self._prompt_tokens

    @property
    def context_tokens(self) -> int:
        return self._prompt_tokens + len(self.response)

    def count_tokens(self, response: str) -> int:
        return len(response)

    def truncate(self, response: str, max_tokens: int) -> str:
        return response[:max_tokens]

    def draft(self, response: str, max_tokens: int, align: bool = True) -> Draft:
        script = self.member.script
        if not script.startswith(response):  # off its script: nothing to propose this round
            return Draft(text="", finished=False)
        text = script[len(response) : len(response) + max_tokens]
        finished = len(response) + len(text) >= len(script)
        self.counters.drafted_tokens += len(text)
        return Draft(text=text, finished=finished, tokens_drafted=len(text))

    def score(self, response: str, candidates: Sequence[Candidate], statistic: str = "mean") -> list[float]:
        self.counters.forward_calls += 1
        rest = self.member.script[len(response) :] if self.member.script.startswith(response) else None

        def matches(c: Candidate) -> bool:
            if rest is None:
                return False
            return rest == c.text if c.finished else bool(c.text) and rest.startswith(c.text)

        return [0.0 if matches(c) else -5.0 for c in candidates]

    def accept(self, response: str, winner, own_draft: bool) -> None:
        self.response = response

    def close(self) -> None:
        self.member.closed += 1

    def constrain(self, fmt) -> bool:
        """Scripts stand for constrained drafts (the core's final check still validates them)."""
        self.member.formats.append(fmt)
        return True


def scripted_ensemble(script: str, other: str = "Something else entirely.", context_window: int = 4096):
    """Three scripted members: two agree on ``script`` (so it wins every round), one dissents."""
    from specfuse_core import EnsembleConfig, SpecFuse

    members = [
        ScriptedMember("alpha", script, context_window),
        ScriptedMember("beta", script, context_window),
        ScriptedMember("gamma", other, context_window),
    ]
    return SpecFuse(members, EnsembleConfig())


def fake_llm(script: str = "Hello there, general Kenobi.", **kwargs):
    """A SpecFuseLLM over :func:`scripted_ensemble`; returns ``(llm, members)``."""
    from llamaindex_specfuse import SpecFuseLLM

    ensemble = scripted_ensemble(script, context_window=kwargs.pop("member_window", 4096))
    return SpecFuseLLM(ensemble=ensemble, **kwargs), ensemble.members


def expected_segments(script: str, segment_tokens: int = 10) -> list[str]:
    return [script[i : i + segment_tokens] for i in range(0, len(script), segment_tokens)]
