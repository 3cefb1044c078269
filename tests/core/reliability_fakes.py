"""Test doubles for the reliability tests: a scripted backend and a wrapper that injects faults and delays.

Both implement the member interface the engine needs (see docs/architecture.md, "Writing another
backend"), so they also show that the engine's guarantees do not depend on transformers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from specfuse_core import Candidate, ContextWindowExceededError, MemberSession
from specfuse_core.kv_cache import cache_length
from specfuse_core.member import Draft, MemberCounters


class InjectedFault(RuntimeError):
    """What a wrapped session raises."""


class ScriptedMember:
    """Drafts a fixed list of segments, one per round (the last one ends the turn when ``finish``).

    Scores come from ``prefer(candidate_text) -> float`` (default: all equal, so the earliest member's
    candidate wins). A character is a token.
    """

    def __init__(
        self,
        name: str,
        segments: Sequence[str],
        *,
        finish: bool = True,
        prefer: Callable[[str], float] | None = None,
        context_window: int = 1_000_000,
        end_of_turn_texts: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.end_of_turn_texts = tuple(end_of_turn_texts)  # like a plain-format member's "\nUser:"
        self.segments = list(segments)
        self.finish = finish
        self.prefer = prefer or (lambda text: 0.0)
        self.context_window = context_window
        self.device = "cpu"

    def encode(self, text: str) -> list[int]:
        return [ord(ch) for ch in text]

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(chr(i) for i in ids)

    def prompt_ids(self, conversation: list[dict[str, str]]) -> list[int]:
        return self.encode("\n".join(m["content"] for m in conversation))

    def start(self, conversation, chooser, reserved: int = 0) -> "ScriptedSession":
        prompt = self.prompt_ids(conversation)
        if len(prompt) + reserved >= self.context_window:
            raise ContextWindowExceededError(self.name, len(prompt), self.context_window, reserved)
        return ScriptedSession(self, prompt)


class ScriptedSession(MemberSession):
    def __init__(self, member: ScriptedMember, prompt: list[int]) -> None:
        self.member = member
        self.name = member.name
        self.counters = MemberCounters()
        self.prompt = prompt
        self.response = ""
        self.drafts = 0
        self.closed = False

    @property
    def prompt_tokens(self) -> int:
        return len(self.prompt)

    @property
    def context_tokens(self) -> int:
        return len(self.prompt) + len(self.response)

    def draft(self, response: str, max_tokens: int, align: bool = True) -> Draft:
        assert not self.closed, "a closed session was driven again"
        self.response = response
        index, self.drafts = self.drafts, self.drafts + 1
        self.counters.forward_calls += 1
        if index >= len(self.member.segments):
            return Draft("", True)
        text = self.member.segments[index]
        self.counters.drafted_tokens += len(text)
        return Draft(text, self.member.finish and index == len(self.member.segments) - 1, len(text))

    def score(self, response: str, candidates: Sequence[Candidate], statistic: str = "mean") -> list[float]:
        assert not self.closed, "a closed session was driven again"
        self.counters.forward_calls += 1
        return [float(self.member.prefer(c.text)) for c in candidates]

    def accept(self, response: str, winner: int | None, own_draft: bool) -> None:
        assert not self.closed, "a closed session was driven again"
        self.response = response

    def count_tokens(self, response: str) -> int:
        return len(response)

    def truncate(self, response: str, max_tokens: int) -> str:
        return response[:max_tokens]

    def close(self) -> None:
        self.closed = True


class WrappedMember:
    """Delegates to ``inner`` (a real or scripted member). Its sessions raise :class:`InjectedFault` at
    their ``fail_at``-th call among ``phases`` (counting each session's calls from 1) in the first
    ``fail_requests`` requests, sleep ``delay`` seconds per draft, and count every draft call."""

    def __init__(
        self,
        inner: Any,
        *,
        fail_at: int | None = None,
        phases: Sequence[str] = ("draft", "score", "accept"),
        fail_requests: int | None = None,
        fail_start: bool = False,
        delay: float = 0.0,
        name: str | None = None,
        error: Callable[[str], BaseException] = InjectedFault,
    ) -> None:
        self.inner = inner
        self.error = error
        self.fail_at = fail_at
        self.phases = tuple(phases)
        self.fail_requests = fail_requests
        self.fail_start = fail_start
        self.delay = delay
        self.name = name or inner.name
        self.sessions: list[WrappedSession] = []
        self.requests = 0
        self.draft_calls = 0
        self._guard = threading.Lock()

    def __getattr__(self, attribute: str) -> Any:  # context_window, device, encode, decode, tokenizer, ...
        return getattr(self.inner, attribute)

    def start(self, conversation, chooser, reserved: int = 0) -> "WrappedSession":
        self.requests += 1
        armed = self.fail_requests is None or self.requests <= self.fail_requests
        if self.fail_start and armed:
            raise self.error(f"{self.name} cannot start")
        session = WrappedSession(self, self.inner.start(conversation, chooser, reserved), armed)
        self.sessions.append(session)
        return session


class WrappedSession(MemberSession):
    def __init__(self, owner: WrappedMember, inner: MemberSession, armed: bool) -> None:
        self.owner = owner
        self.inner = inner
        self.name = owner.name
        self.counters = inner.counters
        self.armed = armed
        self.calls = 0
        self.fired: tuple[str, int] | None = None  # (phase, call number) of the injected fault
        self.closed = False

    @property
    def prompt_tokens(self) -> int:
        return self.inner.prompt_tokens

    @property
    def context_tokens(self) -> int:
        return self.inner.context_tokens

    def _maybe_fail(self, phase: str) -> None:
        assert not self.closed, "a closed session was driven again"
        if phase not in self.owner.phases:
            return
        self.calls += 1
        if self.armed and self.calls == self.owner.fail_at:
            self.fired = (phase, self.calls)
            raise self.owner.error(f"{self.name} broke in {phase}")

    def draft(self, response: str, max_tokens: int, align: bool = True) -> Draft:
        with self.owner._guard:
            self.owner.draft_calls += 1
        if self.owner.delay:
            time.sleep(self.owner.delay)
        self._maybe_fail("draft")
        return self.inner.draft(response, max_tokens, align)

    def score(self, response: str, candidates: Sequence[Candidate], statistic: str = "mean") -> list[float]:
        self._maybe_fail("score")
        return self.inner.score(response, candidates, statistic)

    def accept(self, response: str, winner: int | None, own_draft: bool) -> None:
        self._maybe_fail("accept")
        self.inner.accept(response, winner, own_draft)

    def count_tokens(self, response: str) -> int:
        return self.inner.count_tokens(response)

    def truncate(self, response: str, max_tokens: int) -> str:
        return self.inner.truncate(response, max_tokens)

    def close(self) -> None:
        self.closed = True
        self.inner.close()


def kv_length(session: Any) -> int:
    """Tokens held in a session's KV cache (0 once released); unwraps wrapped sessions."""
    while isinstance(session, WrappedSession):
        session = session.inner
    cache = getattr(session, "cache", None)
    return 0 if cache is None else cache_length(cache)


def released(request: Any) -> bool:
    """Every session of a request holds no keys/values and no draft or verification state."""
    for session in request.sessions.values():
        while isinstance(session, WrappedSession):
            session = session.inner
        if getattr(session, "cache", None) is not None and cache_length(session.cache):
            return False
        if getattr(session, "_draft_record", None) is not None or getattr(session, "_verified", None) is not None:
            return False
        if isinstance(session, ScriptedSession) and not session.closed:
            return False
    return True
