"""OpenAI request fields -> the ensemble's conversation, per-request ``EnsembleConfig`` overrides and
output arguments (tools and response formats: :mod:`.tools`).

Every field is either mapped, accepted at its "off" value only, or (bookkeeping fields that do not
change the answer) accepted and ignored; docs/serving.md lists which is which. A value the ensemble
cannot honour is a 400 naming the field, never a silent no-op."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from ..config import EnsembleConfig
from ..integration import assistant_message
from .errors import APIError, invalid, unsupported
from .limits import ServeLimits
from .schemas import ChatCompletionRequest, ChatMessage
from .tools import assistant_calls, output_arguments, tool_result

ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant", "tool": "tool"}

# EnsembleConfig fields a request may not set through the ``specfuse`` extension: the OpenAI fields
# set the first five (one way to say each thing), and persist_weights would change shared state.
EXTENSION_FORBIDDEN = {
    "max_new_tokens": "max_tokens",
    "temperature": "temperature",
    "top_p": "top_p",
    "seed": "seed",
    "stop": "stop",
    "persist_weights": None,
}

SEED_RANGE = (-(2**63), 2**63 - 1 - 1024)  # a member's seed is seed + its index; torch takes 64 bits


@dataclass
class GenerationPlan:
    """What one request asks of the ensemble: the conversation, config overrides, and the output
    arguments (``response_format``, ``tools``, ``tool_choice``, ``parallel_tool_calls``)."""

    messages: list[dict[str, Any]]
    overrides: dict[str, Any] = field(default_factory=dict)
    output: dict[str, Any] = field(default_factory=dict)
    stream: bool = False
    include_usage: bool = False


def plan_request(request: ChatCompletionRequest, model_name: str, limits: ServeLimits, base: EnsembleConfig) -> GenerationPlan:
    """Map and check one request. ``base``: the server's settings, which the overrides go on top of."""
    if request.model != model_name:
        raise APIError(404, f"The model {request.model!r} does not exist; this server serves {model_name!r}", param="model", code="model_not_found")
    _check_off_fields(request)
    output = output_arguments(request)
    messages = _conversation(request.messages, limits)
    overrides = {"max_new_tokens": _max_tokens(request, limits)}
    if request.temperature is not None:
        if not (math.isfinite(request.temperature) and 0 <= request.temperature <= 2):
            raise invalid(f"temperature must be between 0 and 2, got {request.temperature}", "temperature")
        overrides["temperature"] = request.temperature
    if request.top_p is not None:
        if not (math.isfinite(request.top_p) and 0 < request.top_p <= 1):
            raise invalid(f"top_p must be > 0 and <= 1 (for greedy decoding use temperature 0), got {request.top_p}", "top_p")
        overrides["top_p"] = request.top_p
    if request.seed is not None:
        if not SEED_RANGE[0] <= request.seed <= SEED_RANGE[1]:
            raise invalid(f"seed must be between {SEED_RANGE[0]} and {SEED_RANGE[1]}, got {request.seed}", "seed")
        overrides["seed"] = request.seed
    if request.stop is not None:
        overrides["stop"] = _stop(request.stop, limits)
    overrides.update(_extension(request.specfuse or {}, base))
    if request.stream_options is not None and not request.stream:
        raise invalid("stream_options is only allowed when stream is true", "stream_options")
    include_usage = bool(request.stream_options and request.stream_options.include_usage)
    return GenerationPlan(messages, overrides, output, stream=bool(request.stream), include_usage=include_usage)


def _max_tokens(request: ChatCompletionRequest, limits: ServeLimits) -> int:
    given = {"max_completion_tokens": request.max_completion_tokens, "max_tokens": request.max_tokens}
    set_ = {name: value for name, value in given.items() if value is not None}
    if len(set(set_.values())) > 1:
        raise invalid("max_tokens and max_completion_tokens disagree: set one of them", "max_tokens")
    if not set_:
        return limits.default_max_tokens
    name, value = next(iter(set_.items()))
    if value < 1:
        raise invalid(f"{name} must be at least 1, got {value}", name)
    if value > limits.max_tokens_cap:
        raise invalid(f"{name} is too large: {value}. This server allows at most {limits.max_tokens_cap} completion tokens per request", name)
    return value


def _stop(stop: str | list[str], limits: ServeLimits) -> list[str]:
    stops = [stop] if isinstance(stop, str) else list(stop)
    if len(stops) > limits.max_stop:
        raise invalid(f"stop takes at most {limits.max_stop} strings, got {len(stops)}", "stop")
    for index, text in enumerate(stops):
        if not text:
            raise invalid("stop strings must not be empty", f"stop[{index}]" if isinstance(stop, list) else "stop")
        if len(text) > limits.max_stop_chars:
            raise invalid(f"stop strings are at most {limits.max_stop_chars} characters", f"stop[{index}]" if isinstance(stop, list) else "stop")
    return stops


def _conversation(messages: list[ChatMessage], limits: ServeLimits) -> list[dict[str, Any]]:
    if not messages:
        raise invalid("messages must hold at least one message", "messages")
    if len(messages) > limits.max_messages:
        raise invalid(f"too many messages: {len(messages)}; this server takes at most {limits.max_messages}", "messages")
    conversation = []
    total = 0
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if message.role == "function":
            raise unsupported(f"{where}.role", "role 'function' (legacy function calling)", "answer tool calls with role 'tool' and the call's tool_call_id")
        if message.role not in ROLES:
            raise invalid(f"{where}.role must be one of {', '.join(ROLES)}, got {message.role!r}", f"{where}.role")
        for name in ("function_call", "audio"):
            if getattr(message, name):
                raise unsupported(f"{where}.{name}", name.replace("_", " "))
        if message.tool_calls and message.role != "assistant":
            raise invalid(f"{where}.tool_calls: only assistant messages make tool calls", f"{where}.tool_calls")
        if message.tool_call_id and message.role != "tool":
            raise invalid(f"{where}.tool_call_id: only tool messages answer a tool call", f"{where}.tool_call_id")
        if message.refusal is not None:
            raise unsupported(f"{where}.refusal", "an assistant refusal field", "put the text in content")
        calls = assistant_calls(message.tool_calls, where) if message.tool_calls else []
        content = "" if calls and message.content is None else _text(message.content, where)
        total += len(content) + sum(len(json.dumps(c["arguments"])) for c in calls)
        if total > limits.max_prompt_chars:
            raise invalid(f"the messages are too long: over {limits.max_prompt_chars} characters of text together", "messages", "context_length_exceeded")
        if message.role == "tool":
            conversation.append(tool_result(content, message.tool_call_id, conversation, where))
        elif message.role == "assistant":
            conversation.append(assistant_message(content, calls))
        else:
            conversation.append({"role": ROLES[message.role], "content": content})
    return conversation


def _text(content: str | list[dict[str, Any]] | None, where: str) -> str:
    """String content, or text parts joined by newlines; images, audio and files are refused."""
    if content is None:
        raise invalid(f"{where}.content is required (it may be null only in an assistant message with tool_calls)", f"{where}.content")
    if isinstance(content, str):
        return content
    texts = []
    for index, part in enumerate(content):
        kind = part.get("type")
        if kind != "text":
            raise unsupported(f"{where}.content[{index}].type", f"content part type {kind!r}", "only text parts are")
        extra = set(part) - {"type", "text"}
        if extra:
            raise invalid(f"Unrecognized argument in a text part: {', '.join(sorted(extra))}", f"{where}.content[{index}]")
        if not isinstance(part.get("text"), str):
            raise invalid("a text part needs a string 'text'", f"{where}.content[{index}].text")
        texts.append(part["text"])
    return "\n".join(texts)


def _check_off_fields(request: ChatCompletionRequest) -> None:
    """Fields the ensemble cannot honour are accepted only at the value that asks for nothing."""
    if request.n not in (None, 1):
        raise unsupported("n", f"n={request.n}", "the server returns one choice; send n separate requests")
    for name in ("frequency_penalty", "presence_penalty"):
        if getattr(request, name) not in (None, 0):
            raise unsupported(name, f"a non-zero {name}", "the ensemble's own specfuse.repetition_penalty is")
    checks = {
        "logit_bias": request.logit_bias in (None, {}),
        "logprobs": request.logprobs in (None, False),
        "top_logprobs": request.top_logprobs in (None, 0),
        "modalities": request.modalities in (None, ["text"]),
        "audio": request.audio is None,
        "prediction": request.prediction is None,
        "reasoning_effort": request.reasoning_effort is None,
        "verbosity": request.verbosity is None,
        "web_search_options": request.web_search_options is None,
        "store": request.store in (None, False),
    }
    for name, ok in checks.items():
        if not ok:
            raise unsupported(name, f"{name}={getattr(request, name)!r}"[:200])


def _extension(settings: dict[str, Any], base: EnsembleConfig) -> dict[str, Any]:
    """The ``specfuse`` object: EnsembleConfig fields for this request, validated like the config."""
    for name in settings:
        if name in EXTENSION_FORBIDDEN:
            instead = EXTENSION_FORBIDDEN[name]
            hint = f"use the OpenAI field {instead!r}" if instead else "it would change the server's shared state"
            raise invalid(f"specfuse.{name} cannot be set per request: {hint}", f"specfuse.{name}")
        if name not in EnsembleConfig.model_fields:
            raise invalid(f"Unrecognized ensemble setting: specfuse.{name}", f"specfuse.{name}")
        if settings[name] is None:
            raise invalid(f"specfuse.{name}: null is not a setting; leave the field out to keep the server's", f"specfuse.{name}")
    if base.timeout_s is not None and settings.get("timeout_s") is not None:
        timeout = settings["timeout_s"]
        if not isinstance(timeout, (int, float)) or timeout > base.timeout_s:
            raise invalid(f"specfuse.timeout_s may only lower the server's request timeout of {base.timeout_s} s", "specfuse.timeout_s")
    try:
        base.with_overrides(**settings)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        name = str(first["loc"][0]) if first["loc"] else ""
        message = first["msg"].removeprefix("Value error, ")
        raise invalid(f"specfuse.{name}: {message} (got {first.get('input')!r})"[:1000], f"specfuse.{name}") from None
    return dict(settings)
