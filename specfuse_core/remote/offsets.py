"""Text-offset arithmetic for scoring from echoed prompt log-probabilities. Pure functions, unit-tested.

A scoring prompt is ``rendered prompt + response + candidate [+ end-of-turn]``. The server echoes it as
tokens with ``text_offset`` (character offsets) and ``token_logprobs``. Offsets are the server's
own (cumulative lengths of its decoded tokens), and servers decode special tokens differently
(llama-cpp-python as "", others as their text), so offsets are never compared with positions in our
string directly. They are anchored at the END of the candidate text, which is plain text both sides:

- a finished chat candidate ends with the end-of-turn special token: the last prompt token; the
  candidate text ends where that token starts, and the token itself is scored too;
- otherwise the candidate text (with a plain-format member's ending text) ends where the prompt ends.

A token is part of the candidate when its span overlaps the candidate text: a token merged across the
response/candidate boundary counts, as it does for a local member (whose scored tokens are those that
differ from the response's own tokenisation).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..backend import TokenStatistic, token_statistic
from .errors import RemoteProtocolError


@dataclass(frozen=True)
class EchoedPrompt:
    """The prompt part of one echoed choice (generated tokens removed)."""

    tokens: list[str]
    offsets: list[int]
    logprobs: list[float | None]
    end: int  # server-side offset where the prompt text ends


def echoed_prompt(logprobs: Any, generated: int) -> EchoedPrompt:
    """Split a choice's ``logprobs`` object into its prompt entries, dropping ``generated`` trailing
    entries (the token a ``max_tokens=1`` scoring call had to generate)."""
    if not isinstance(logprobs, dict):
        raise RemoteProtocolError(
            "the server returned no log-probabilities for an echo=true, logprobs request; it cannot verify "
            "(llama.cpp's llama-server does not echo prompt log-probs: use vLLM or llama-cpp-python's server)"
        )
    tokens, offsets, values = logprobs.get("tokens"), logprobs.get("text_offset"), logprobs.get("token_logprobs")
    if not (isinstance(tokens, list) and isinstance(offsets, list) and isinstance(values, list)):
        raise RemoteProtocolError("echoed log-probabilities lack tokens/text_offset/token_logprobs")
    if not len(tokens) == len(offsets) == len(values) or len(tokens) <= generated:
        raise RemoteProtocolError(
            f"echoed log-probabilities are inconsistent: {len(tokens)} tokens, {len(offsets)} offsets, "
            f"{len(values)} log-probs, {generated} generated"
        )
    count = len(tokens) - generated
    end = offsets[count] if generated else offsets[count - 1] + len(tokens[count - 1])
    return EchoedPrompt(list(tokens[:count]), [int(o) for o in offsets[:count]], list(values[:count]), int(end))


def candidate_token_indices(echo: EchoedPrompt, text_length: int, ends_with_special: bool) -> list[int]:
    """Indices of the echoed tokens that belong to a candidate whose text (``text_length`` characters)
    ends the prompt, followed by one end-of-turn special token when ``ends_with_special``."""
    count = len(echo.tokens)
    if ends_with_special:
        if count == 0:
            raise RemoteProtocolError("a finished candidate was echoed without its end-of-turn token")
        body, anchor, tail = count - 1, echo.offsets[count - 1], [count - 1]
    else:
        body, anchor, tail = count, echo.end, []
    start = anchor - text_length
    picked: list[int] = []
    for index in range(body - 1, -1, -1):
        token_end = echo.offsets[index + 1] if index + 1 < count else echo.end
        if token_end <= start or text_length == 0:
            break
        picked.append(index)
    return picked[::-1] + tail


def candidate_logprob(echo: EchoedPrompt, indices: Sequence[int], statistic: TokenStatistic = "mean") -> float:
    """Mean (or minimum) log-probability of the chosen tokens (the echo's first token has none: it is
    never a candidate token, since a prompt precedes every candidate)."""
    if not indices:
        raise RemoteProtocolError("no echoed token falls inside the candidate")
    values = [echo.logprobs[i] for i in indices]
    if any(v is None or not math.isfinite(v) for v in values):
        raise RemoteProtocolError("the server returned a missing or non-finite log-probability for a candidate token")
    return token_statistic(values, statistic)  # type: ignore[arg-type]


def generated_per_choice(body: dict[str, Any], prompts: int, max_tokens: int) -> list[int] | None:
    """How many generated entries trail each choice's echo, from ``usage.completion_tokens``; None when
    a multi-prompt answer does not say it unambiguously (the caller then scores one prompt per call)."""
    if max_tokens == 0:
        return [0] * prompts
    usage = body.get("usage") or {}
    total = usage.get("completion_tokens")
    if not isinstance(total, int):
        return None
    if prompts == 1:
        return [total]
    if total == 0:
        return [0] * prompts
    if total == prompts * max_tokens:
        return [max_tokens] * prompts
    return None
