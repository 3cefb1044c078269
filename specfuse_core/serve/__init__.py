"""``specfuse serve``: the ensemble behind an OpenAI-compatible HTTP API (docs/serving.md).
Needs the ``serve`` extra (Starlette and uvicorn). Its names are imported on first use, so the rest
of the CLI (which imports :mod:`.command`) works without that extra."""

from __future__ import annotations

from importlib import import_module
from typing import Any

_HOMES = {"ServeSettings": ".app", "create_app": ".app", "ServeLimits": ".limits", "ServerThread": ".server"}

__all__ = ["ServeLimits", "ServeSettings", "ServerThread", "create_app"]


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(import_module(_HOMES[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
