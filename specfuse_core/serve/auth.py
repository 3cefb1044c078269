"""Optional bearer-token check (``Authorization: Bearer <key>``), as OpenAI clients send it."""

from __future__ import annotations

import hmac

from starlette.requests import Request

from .errors import APIError


def check_api_key(request: Request, api_key: str | None) -> None:
    """No key configured: every caller may use the server (bind it to loopback, the default)."""
    if api_key is None:
        return
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    challenge = {"WWW-Authenticate": "Bearer"}
    if scheme.lower() != "bearer" or not given.strip():
        raise APIError(401, "You didn't provide an API key: send it as 'Authorization: Bearer <key>'", code="missing_api_key", headers=challenge)
    # constant-time comparison: the time taken says nothing about how much of the key was right
    if not hmac.compare_digest(given.strip().encode("utf-8"), api_key.encode("utf-8")):
        raise APIError(401, "Incorrect API key provided", code="invalid_api_key", headers=challenge)
