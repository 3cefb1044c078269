"""HTTP transport to one completions server: one pooled ``httpx.Client`` per member (keep-alive
connections are reused across rounds and requests; the client is thread-safe), timeouts, and retries
with exponential backoff (tenacity) for failures that a retry can fix."""

from __future__ import annotations

import logging
import os
from typing import Any

import httpx
from tenacity import RetryError, Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from .config import RemoteMemberConfig
from .errors import RemoteProtocolError, RemoteRequestError, RemoteUnavailableError

logger = logging.getLogger(__name__)

_RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class _RetryableStatus(Exception):
    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        super().__init__(f"HTTP {response.status_code}")


def _retryable(error: BaseException) -> bool:
    return isinstance(error, (httpx.TransportError, _RetryableStatus))


class CompletionsClient:
    """POSTs JSON to ``/v1/completions``; returns the decoded body or raises a named error."""

    def __init__(self, config: RemoteMemberConfig) -> None:
        self.config = config
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(config.api_key_env, "") if config.api_key_env else ""
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._http = httpx.Client(
            timeout=httpx.Timeout(config.read_timeout_s, connect=config.connect_timeout_s),
            limits=httpx.Limits(max_connections=config.max_connections, max_keepalive_connections=config.max_connections),
            headers=headers,
        )
        self.calls = 0  # HTTP attempts, retries included (for tests and benchmarks)

    def __repr__(self) -> str:  # never shows headers (the key)
        return f"CompletionsClient({self.config.completions_url!r})"

    def complete(self, payload: dict[str, Any], retry: bool = True) -> dict[str, Any]:
        """One completions call. Connection errors, timeouts, 5xx and 429 are retried ``retries`` times
        (unless ``retry`` is False); a 4xx is the caller's mistake and raised at once."""
        config = self.config
        attempts = config.retries + 1 if retry else 1
        retrying = Retrying(
            stop=stop_after_attempt(attempts),
            wait=wait_exponential(multiplier=config.backoff_s, max=config.backoff_max_s),
            retry=retry_if_exception(_retryable),
            reraise=False,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._post(payload)
        except RetryError as error:
            last = error.last_attempt.exception()
            raise RemoteUnavailableError(
                f"{config.completions_url} failed {attempts} time(s); last error: {_describe(last)}. "
                f"Check that the server is up and serves model {config.model!r}, or raise "
                "read_timeout_s/retries in the member's RemoteMemberConfig"
            ) from last
        raise AssertionError("unreachable")  # pragma: no cover

    def _post(self, payload: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        response = self._http.post(self.config.completions_url, json=payload)
        if response.status_code in _RETRY_STATUSES:
            raise _RetryableStatus(response)
        if response.status_code >= 400:
            raise RemoteRequestError(
                f"{self.config.completions_url} refused the request with HTTP {response.status_code}: "
                f"{_body_excerpt(response)}. Check the model name {self.config.model!r}, the API key "
                "variable, and that the server supports echo/logprobs"
            )
        try:
            body = response.json()
        except ValueError as error:
            raise RemoteProtocolError(f"{self.config.completions_url} answered with non-JSON: {_body_excerpt(response)}") from error
        if not isinstance(body, dict) or not isinstance(body.get("choices"), list):
            raise RemoteProtocolError(f"{self.config.completions_url} answered without 'choices': {str(body)[:200]}")
        return body

    def close(self) -> None:
        self._http.close()


def _describe(error: BaseException | None) -> str:
    if isinstance(error, _RetryableStatus):
        return f"HTTP {error.response.status_code}: {_body_excerpt(error.response)}"
    return f"{type(error).__name__}: {error}" if error is not None else "unknown"


def _body_excerpt(response: httpx.Response) -> str:
    try:
        return response.text[:300]
    except Exception:  # a body that cannot be decoded says nothing useful
        return "<unreadable body>"
