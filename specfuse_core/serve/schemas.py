"""The request body of ``POST /v1/chat/completions``, as OpenAI defines it. Types are checked strictly
("0.5" is not a number) and unknown fields are refused, like OpenAI does; what each field *means*
for the ensemble is decided in :mod:`.mapping`."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import APIError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class StreamOptions(_Strict):
    include_usage: bool | None = None
    include_obfuscation: bool | None = None  # padding against length side channels; nothing to pad here


class ChatMessage(_Strict):
    role: str
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    # tool calling: an assistant's calls, a tool result's call id (see tools.py); the rest only when empty
    tool_calls: list[Any] | None = None
    tool_call_id: str | None = None
    function_call: Any = None
    refusal: str | None = None
    audio: Any = None


class ChatCompletionRequest(_Strict):
    model: str
    messages: list[ChatMessage]
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    # mapped to EnsembleConfig
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    n: int | None = None
    # accepted only at their "off" value (mapping says which), since the ensemble cannot honour more;
    # tools, tool_choice, response_format (and legacy functions, refused) are mapped in tools.py
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    logit_bias: dict[str, Any] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    tools: list[Any] | None = None
    tool_choice: Any = None
    functions: list[Any] | None = None
    function_call: Any = None
    response_format: dict[str, Any] | None = None
    modalities: list[str] | None = None
    audio: Any = None
    prediction: Any = None
    reasoning_effort: Any = None
    verbosity: Any = None
    web_search_options: Any = None
    store: bool | None = None
    parallel_tool_calls: bool | None = None  # with tools: several calls per answer (tools.py)
    # accepted and ignored: bookkeeping fields that do not change the answer
    user: str | None = None
    metadata: dict[str, Any] | None = None
    service_tier: str | None = None
    prompt_cache_key: str | None = None
    safety_identifier: str | None = None
    # extension: per-request ensemble settings (see docs/serving.md)
    specfuse: dict[str, Any] | None = None


def param_path(loc: tuple[Any, ...]) -> str:
    """Pydantic's location as a JSON path: ``("messages", 2, "content")`` -> ``messages[2].content``."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in ("str", "list[dict[str,any]]", "list[str]") or str(part).startswith(("function-", "list[")):
            continue  # union branch names, not fields
        else:
            path += f".{part}" if path else str(part)
    return path


def parse_request(payload: Any) -> ChatCompletionRequest:
    """Validate a decoded JSON body; the first problem becomes a 400 naming its field."""
    if not isinstance(payload, dict):
        raise APIError(400, "the request body must be a JSON object")
    try:
        return ChatCompletionRequest.model_validate(payload)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        param = param_path(first["loc"])
        if first["type"] == "extra_forbidden":
            raise APIError(400, f"Unrecognized request argument supplied: {param}", param=param) from None
        if first["type"] == "missing":
            raise APIError(400, f"Missing required parameter: {param}", param=param, code="missing_required_parameter") from None
        given = f" (got {first['input']!r})" if first["type"] != "missing" else ""
        raise APIError(400, f"{param}: {first['msg']}{given}"[:1000], param=param, code="invalid_type") from None
