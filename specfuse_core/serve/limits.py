"""Bounds on what one request may ask of the server, so a single client cannot exhaust memory or
hold the ensemble for hours. Everything over a bound is refused up front (413 or 400), not truncated."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from .errors import APIError


@dataclass(frozen=True)
class ServeLimits:
    max_body_bytes: int = 1 << 20  # 1 MiB of JSON
    max_messages: int = 256
    max_prompt_chars: int = 100_000  # all messages' text together
    max_tokens_cap: int = 1024  # the most a request may ask for (max_tokens / max_completion_tokens)
    default_max_tokens: int = 256  # when a request does not say
    max_stop: int = 4  # like OpenAI
    max_stop_chars: int = 256
    max_concurrent_requests: int = 64  # in flight at once (streaming or not); more get 429

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if self.default_max_tokens > self.max_tokens_cap:
            raise ValueError(f"default_max_tokens ({self.default_max_tokens}) is over max_tokens_cap ({self.max_tokens_cap})")


def too_large(limit: int) -> APIError:
    return APIError(413, f"request body is larger than this server's limit of {limit} bytes", code="request_too_large")


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it passes ``limit`` bytes: a declared Content-Length
    over the limit is refused before reading, and a chunked body is counted as it arrives."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)
