"""What the engine needs from a member, free of torch: the types a round passes around, the session
interface, the member protocol, and the text handling every tokenizer-backed backend shares.

A *member* is a loaded model (local weights, a remote server); a *session* is that member's state
inside one request. The engine drives sessions only, so several requests share a member's weights
without sharing caches. ``specfuse_core.local`` (transformers) and ``specfuse_core.remote``
(completions servers) implement this module; a remote-only user never imports torch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel

from .errors import ContextWindowExceededError
from .messages import Conversation
from .text_align import REPLACEMENT_CHAR, cut_to_word_boundary
from .tokenizer_view import TokenizerView


TokenStatistic = Literal["mean", "min"]


def token_statistic(logprobs: Sequence[float], statistic: TokenStatistic = "mean") -> float:
    """One number for a candidate's token log-probs: their mean (how likely the text reads as a whole,
    what votes use) or their minimum (the one token the verifier finds least likely: a wrong name or
    number in an otherwise fluent sentence, which the mean dilutes)."""
    if statistic == "min":
        return min(logprobs)
    return sum(logprobs) / len(logprobs)


@dataclass(frozen=True)
class Candidate:
    """A proposed segment. ``finished``: its member ended the turn right after this text."""

    text: str
    finished: bool


@dataclass(frozen=True)
class Draft(Candidate):
    tokens_drafted: int = 0
    # the drafter's own confidence in its segment (None: unknown); not part of what is proposed
    mean_logprob: float | None = field(default=None, compare=False)


class MemberUsage(BaseModel):
    """Work one member did in one request: counted by its session, reported in ``Usage.members``."""

    drafted_tokens: int = 0
    verified_tokens: int = 0
    forward_calls: int = 0
    # passes of this member that served this request together with other requests (batched rounds:
    # shared drafting steps and pooled scoring passes)
    shared_forward_calls: int = 0


MemberCounters = MemberUsage  # the name sessions used before the two were merged


@dataclass(frozen=True)
class Sampling:
    """How a member picks draft tokens in one request: plain settings, so every backend reads the same
    values (a local member builds its token chooser from them, a remote one sends them)."""

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    no_repeat_ngram_size: int = 0  # 0: off; local members only (see EnsembleConfig)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


class MemberSession(ABC):
    """One member inside one request: the operations a round needs."""

    name: str
    counters: MemberUsage

    @property
    @abstractmethod
    def prompt_tokens(self) -> int:
        """Prompt length in this member's tokens."""

    @property
    @abstractmethod
    def context_tokens(self) -> int:
        """Prompt plus response so far, in this member's tokens."""

    @abstractmethod
    def draft(self, response: str, max_tokens: int, align: bool = True) -> Draft:
        """Continue ``prompt + response`` by up to ``max_tokens`` own tokens; return aligned text."""

    @abstractmethod
    def score(self, response: str, candidates: Sequence[Candidate], statistic: TokenStatistic = "mean") -> list[float]:
        """Mean (or, with ``statistic="min"``, minimum) token log-probability of each candidate after
        ``prompt + response``, in one batched pass."""

    @abstractmethod
    def accept(self, response: str, winner: int | None, own_draft: bool) -> None:
        """The round's winner was appended: ``response`` is the new text. ``winner`` indexes the
        candidates of the last :meth:`score` call (None if this session did not score);
        ``own_draft`` says the winning text is this session's own last draft."""

    @abstractmethod
    def count_tokens(self, response: str) -> int:
        """Length of ``response`` in this member's tokens (its own tokens where it wrote the text)."""

    @abstractmethod
    def truncate(self, response: str, max_tokens: int) -> str:
        """The text of the first ``max_tokens`` of this member's tokens of ``response``."""

    @abstractmethod
    def close(self) -> None:
        """Release the request's caches."""

    def constrain(self, fmt: Any) -> bool:
        """Draft under the grammar of ``fmt`` (a ``constrained.ResponseFormat``) from now on. Returns
        False where the backend cannot mask its drafts (text-only members): it then only verifies in
        constrained requests. Raises ``UnsupportedSchemaError`` for a format the engine refuses."""
        return False


@runtime_checkable
class MemberBackend(Protocol):
    """What the engine uses of a member object (local, remote, or a test double)."""

    name: str
    context_window: int
    device: Any  # members on different devices draft and verify concurrently

    def encode(self, text: str) -> list[int]: ...

    def prompt_ids(self, conversation: Conversation) -> list[int]: ...

    def start(self, conversation: Conversation, sampling: Sampling, reserved: int = 0) -> MemberSession: ...


class TextMember:
    """The text surface every tokenizer-backed member shares (encode, decode, render, prompt tokens,
    end of turn, the context-window check), for classes that keep a :class:`TokenizerView` in ``self.tokens``."""

    name: str
    context_window: int
    tokens: TokenizerView

    def encode(self, text: str) -> list[int]:
        """Tokens of plain text (special-token spellings stay text)."""
        return self.tokens.encode(text)

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokens.decode(ids)

    def render(self, conversation: Conversation) -> str:
        return self.tokens.render(conversation)

    @property
    def plain_prompt(self) -> Any:
        """The plain prompt format of a member without a chat template, else None."""
        return self.tokens.plain_prompt

    @property
    def end_of_turn_id(self) -> int | None:
        """The special token that ends a chat member's turn (None for a plain-format member)."""
        return self.tokens.end_of_turn_id

    @property
    def end_of_turn_text(self) -> str | None:
        """The text that ends a plain-format member's turn (``"\\n\\nUser:"``; None for a chat member)."""
        return self.tokens.end_of_turn_text

    @property
    def end_of_turn_texts(self) -> tuple[str, ...]:
        """Texts that end this member's turn (plain format: ``"\\nUser:"``, ``"\\nSystem:"``; chat
        members end with a token instead). The engine ends the request where the accepted response
        spells one, also across segments."""
        return self.tokens.stop_strings

    def prompt_ids(self, conversation: Conversation) -> list[int]:
        """The rendered prompt's tokens; message text cannot forge the template's control tokens."""
        return self.tokens.prompt_ids(conversation)

    def fitting_prompt_ids(self, conversation: Conversation, reserved: int) -> list[int]:
        """The prompt's tokens; raises if they (plus ``reserved`` tokens for a round) do not fit."""
        prompt = self.prompt_ids(conversation)
        if len(prompt) + reserved >= self.context_window:
            raise ContextWindowExceededError(self.name, len(prompt), self.context_window, reserved)
        return prompt


class TextSession(MemberSession):
    """Session state every tokenizer-backed backend keeps: the prompt's tokens, this member's token view
    of the shared response, counters; and the text rules a draft ends with."""

    def __init__(self, member: TextMember, prompt_ids: list[int]) -> None:
        self.member = member
        self.name = member.name
        self.prompt_ids = prompt_ids
        self.counters = MemberUsage()
        self.response_text = ""
        self.response_ids: list[int] = []  # this member's tokens for response_text

    @property
    def prompt_tokens(self) -> int:
        return len(self.prompt_ids)

    @property
    def context_tokens(self) -> int:
        return len(self.prompt_ids) + len(self.response_ids)

    def _view(self, response: str) -> list[int]:
        """This member's tokens for ``response`` (re-tokenising only when the text changed)."""
        if response != self.response_text:
            self.response_ids = self.member.encode(response)
            self.response_text = response
        return self.response_ids

    def _finish_draft(self, text: str, finished: bool, response: str, align: bool) -> tuple[str, bool]:
        """The rules every draft ends with: a plain-format member's end-of-turn text ends it, the space
        after "Assistant:" is format, and an unfinished draft is cut back to a word boundary."""
        for stop in self.member.tokens.stop_strings:
            if stop in text:
                text, finished = text[: text.index(stop)].rstrip("\n"), True
        if self.member.plain_prompt is not None and not response:
            text = text.lstrip(" ")
        if align:
            text = cut_to_word_boundary(text, finished)
        return text, finished

    def count_tokens(self, response: str) -> int:
        return len(self._view(response))

    def truncate(self, response: str, max_tokens: int) -> str:
        ids = self._view(response)[:max_tokens]
        text = self.member.tokens.continuation(self.prompt_ids, ids).rstrip(REPLACEMENT_CHAR)
        if not response.startswith(text):  # a normalising tokenizer (Qwen2: NFC): cut the accepted text itself
            text = self.member.tokens.longest_prefix_within(response, max_tokens)
            ids = self.member.encode(text)
        self.response_text, self.response_ids = text, ids  # keep this member's own tokens for the cut text
        return text
