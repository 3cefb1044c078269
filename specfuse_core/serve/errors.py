"""OpenAI-shaped HTTP errors. Clients (the ``openai`` package, LangChain's ``ChatOpenAI``) turn these
bodies into their own typed exceptions, so the shape matters as much as the status."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse


class APIError(Exception):
    """A request the server refuses or could not complete; rendered as ``{"error": {...}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = type or ("server_error" if status >= 500 else "invalid_request_error")
        self.headers = headers

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def invalid(message: str, param: str | None = None, code: str | None = None) -> APIError:
    """A 400: the caller's mistake, named by ``param`` (e.g. ``"messages[2].content"``)."""
    return APIError(400, message, param=param, code=code)


def unsupported(param: str, what: str, instead: str = "") -> APIError:
    """A 400 for a field this server understands but cannot honour (never silently ignored)."""
    hint = f"; {instead}" if instead else ""
    return APIError(400, f"{param}: {what} is not supported by this server{hint}", param=param, code="unsupported_parameter")
