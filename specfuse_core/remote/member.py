"""A member served over the OpenAI-compatible ``/v1/completions`` API (vLLM, llama-cpp-python's server).

Drafting is one completion of ``segment_tokens`` tokens from ``rendered prompt + response``; scoring
is one echo request (``echo=true, logprobs=0``) for all candidates, read with the text offsets the
server returns (see :mod:`.offsets`). The server keeps no per-request state for us: a session is the
prompt text, a token view of the response (for counting) and counters, so closing it frees nothing
remote. Each server is its own ``device``, so the engine's thread pool sends every member's call at
once and a round takes as long as its slowest member, not the sum.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Sequence
from typing import Any

from ..backend import Candidate, Draft, Sampling, TextMember, TextSession, TokenStatistic
from ..messages import Conversation
from ..text_align import REPLACEMENT_CHAR, before_broken_bytes
from .client import CompletionsClient
from .config import RemoteMemberConfig
from .errors import RemoteConfigError, RemoteMemberError, RemotePromptError, RemoteProtocolError
from .offsets import EchoedPrompt, candidate_logprob, candidate_token_indices, echoed_prompt, generated_per_choice
from ..tokenizer_view import TokenizerView
from .tokens import load_tokenizer

# Score of an empty, unfinished candidate: nothing to score, so it must never win (the engine drops
# such candidates before scoring; this keeps score() total).
IMPOSSIBLE = -1.0e4


class RemoteMember(TextMember):
    """An ensemble member whose model runs on a completions server. Mix freely with local members:
    ``SpecFuse([local_member, RemoteMember(RemoteMemberConfig(...))])``."""

    def __init__(self, config: RemoteMemberConfig, tokenizer: Any | None = None) -> None:
        self.config = config
        self.name = config.member_name
        self.context_window = config.context_window
        self.device = f"remote:{config.base_url}"  # one device per server: the engine fans out across them
        source = tokenizer if tokenizer is not None else load_tokenizer(config.tokenizer or config.model, config.chat_template)
        if tokenizer is not None and config.chat_template is not None:
            source.chat_template = config.chat_template
        self.tokens = TokenizerView(source, config.plain_prompt)
        # The text sent after a finished candidate: the end-of-turn token as the server parses it, or
        # a plain-format member's ending text (``end_of_turn_text``).
        self.finished_suffix = self.tokens.end_of_turn_token or self.tokens.end_of_turn_text
        self.ends_with_special = self.tokens.end_of_turn_id is not None
        if not self.finished_suffix:
            raise RemoteConfigError(f"member {self.name!r}: the tokenizer has a chat template but no end-of-turn or EOS token")
        self.client = CompletionsClient(config)
        self._batching = config.score_batching
        self._batching_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RemoteMember(name={self.name!r}, model={self.config.model!r}, base_url={self.config.base_url!r})"

    # ------------------------------------------------------------------ the surface the engine uses
    def describe(self) -> dict[str, Any]:
        """Identity for traces and logs: never the API key (only the variable's name, if any)."""
        return {
            "name": self.name,
            "model": self.config.model,
            "backend": "openai-completions",
            "base_url": self.config.base_url,
            "api_key_env": self.config.api_key_env,
            "context_window": self.context_window,
            "prompt_format": "plain" if self.plain_prompt else "chat_template",
            "device": self.device,
        }

    def start(self, conversation: Conversation, sampling: Sampling, reserved: int = 0) -> "RemoteSession":
        forged = [i for i, m in enumerate(conversation) if self.tokens.spells_special(m["content"])]
        if forged:
            raise RemotePromptError(
                f"message(s) {forged} spell a special token of member {self.name!r}; a completions server "
                "would parse it as a control token, so this member sits the request out"
            )
        return RemoteSession(self, self.render(conversation), self.fitting_prompt_ids(conversation, reserved), sampling)

    def close(self) -> None:
        """Close the pooled connections (the member is unusable afterwards)."""
        self.client.close()

    # ------------------------------------------------------------------ protocol
    def request(self, payload: dict[str, Any], retry: bool = True) -> dict[str, Any]:
        body = {**self.config.extra_params, **payload, "model": self.config.model, "stream": False}
        return self.client.complete(body, retry=retry)

    def echo(self, prompts: list[str]) -> tuple[list[EchoedPrompt], int]:
        """Echoed prompt log-probs of each prompt, and the number of HTTP calls it took."""
        if len(prompts) > 1 and self._batching in ("auto", "list"):
            try:
                return self._echo_list(prompts), 1
            except RemoteMemberError:
                if self._batching == "list":
                    raise
            echoed = [self._echo_list([p])[0] for p in prompts]
            with self._batching_lock:
                self._batching = "per_candidate"  # the list failed where single prompts work: remember
            return echoed, len(prompts) + 1
        return [self._echo_list([p])[0] for p in prompts], len(prompts)

    def _echo_list(self, prompts: list[str]) -> list[EchoedPrompt]:
        max_tokens = self.config.score_max_tokens
        payload = {
            "prompt": prompts if len(prompts) > 1 else prompts[0],
            "max_tokens": max_tokens,
            "echo": True,
            "logprobs": 0,
            "temperature": 0.0,
        }
        # A multi-prompt probe in "auto" mode is not retried: a server that refuses lists answers 4xx/5xx.
        body = self.request(payload, retry=not (len(prompts) > 1 and self._batching == "auto"))
        choices = sorted(body["choices"], key=lambda c: c.get("index", 0))
        if len(choices) != len(prompts):
            raise RemoteProtocolError(f"sent {len(prompts)} prompts, got {len(choices)} choices")
        generated = generated_per_choice(body, len(prompts), max_tokens)
        if generated is None:
            raise RemoteProtocolError("cannot tell generated tokens from echoed ones in a multi-prompt answer")
        return [echoed_prompt(c.get("logprobs"), g) for c, g in zip(choices, generated)]


class RemoteSession(TextSession):
    """A remote member inside one request."""

    member: RemoteMember

    def __init__(self, member: RemoteMember, prompt_text: str, prompt_ids: list[int], sampling: Sampling) -> None:
        super().__init__(member, prompt_ids)
        self.prompt_text = prompt_text
        self.sampling, self._seed = sampling_params(sampling)
        self._drafts = 0
        self.timings: list[tuple[int, str, float]] = []  # (round, "draft"/"score", seconds) of each HTTP exchange

    # ------------------------------------------------------------------ draft
    def draft(self, response: str, max_tokens: int, align: bool = True) -> Draft:
        self._view(response)
        payload: dict[str, Any] = {"prompt": self.prompt_text + response, "max_tokens": max_tokens, **self.sampling}
        if self._seed is not None:
            payload["seed"] = (self._seed + self._drafts) % (2**31)  # reproducible, different each round
        self._drafts += 1
        started = time.perf_counter()
        body = self.member.request(payload)
        self.timings.append((self._drafts, "draft", time.perf_counter() - started))
        choice = body["choices"][0]
        text, reason = choice.get("text"), choice.get("finish_reason")
        if not isinstance(text, str):
            raise RemoteProtocolError(f"a completion choice without text: {str(choice)[:200]}")
        usage = body.get("usage") or {}
        drafted = usage.get("completion_tokens")
        drafted = drafted if isinstance(drafted, int) else len(self.member.encode(text))
        self.counters.forward_calls += 1
        self.counters.drafted_tokens += drafted

        finished = reason == "stop"  # the model produced an end-of-generation token
        text = text.rstrip(REPLACEMENT_CHAR)  # an unfinished UTF-8 character waits for the next segment
        text, finished = before_broken_bytes(text, finished)  # a stray byte the server could not decode
        text, finished = self._finish_draft(text, finished, response, align)
        return Draft(text=text, finished=finished, tokens_drafted=drafted)

    # ------------------------------------------------------------------ score
    def score(self, response: str, candidates: Sequence[Candidate], statistic: TokenStatistic = "mean") -> list[float]:
        self._view(response)
        member = self.member
        prompts: list[str] = []
        lengths: list[int] = []
        specials: list[bool] = []
        wanted: list[int] = []
        for index, cand in enumerate(candidates):
            if not cand.text and not cand.finished:
                continue
            ending = member.finished_suffix if cand.finished else ""
            special = cand.finished and member.ends_with_special
            prompts.append(self.prompt_text + response + cand.text + ending)
            lengths.append(len(cand.text) + (0 if special or not cand.finished else len(ending)))
            specials.append(special)
            wanted.append(index)
        scores = [IMPOSSIBLE] * len(candidates)
        if not prompts:
            return scores
        started = time.perf_counter()
        echoed, calls = self.member.echo(prompts)
        self.timings.append((self._drafts, "score", time.perf_counter() - started))
        self.counters.forward_calls += calls
        for index, echo, length, special in zip(wanted, echoed, lengths, specials):
            picked = candidate_token_indices(echo, length, special)
            scores[index] = candidate_logprob(echo, picked, statistic)
            self.counters.verified_tokens += len(picked)
        return scores

    # ------------------------------------------------------------------ bookkeeping
    def accept(self, response: str, winner: int | None, own_draft: bool) -> None:
        self._view(response)  # nothing is cached remotely; the server re-reads the text next round

    def close(self) -> None:
        self.response_text, self.response_ids = "", []


def sampling_params(sampling: Sampling) -> tuple[dict[str, Any], int | None]:
    """The request's sampling settings as completions parameters, and the seed to start from (a random
    one when sampling unseeded, so each round's seed still differs). Greedy is ``temperature=0``
    (argmax on llama.cpp and vLLM); top-k is sent only when set (``extra_params`` switches the
    server's own default off)."""
    if sampling.greedy:
        return {"temperature": 0.0, "top_p": 1.0}, None
    params: dict[str, Any] = {"temperature": float(sampling.temperature), "top_p": float(sampling.top_p)}
    if sampling.top_k > 0:
        params["top_k"] = int(sampling.top_k)
    return params, sampling.seed if sampling.seed is not None else random.randrange(2**31)
