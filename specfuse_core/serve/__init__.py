"""``specfuse serve``: the ensemble behind an OpenAI-compatible HTTP API (docs/serving.md).
Needs the ``serve`` extra (Starlette and uvicorn)."""

from .app import ServeSettings, create_app
from .limits import ServeLimits
from .server import ServerThread

__all__ = ["ServeLimits", "ServeSettings", "ServerThread", "create_app"]
