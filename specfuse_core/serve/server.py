"""Running the app on uvicorn: binding the socket ourselves (a port in use is a clear error, and port 0
gives a free one), graceful shutdown, and a background-thread runner for tests and benchmarks.

Shutdown (SIGTERM or Ctrl-C, or :meth:`ServerThread.stop`): uvicorn stops accepting connections, lets
in-flight requests finish for up to ``shutdown_timeout`` seconds, then cancels the rest; a cancelled
request's generation is closed (its caches freed within one round). A second Ctrl-C exits at once."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn


class BindError(OSError):
    """The address cannot be bound (in use, not local, no permission)."""


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host, port), family=family, reuse_port=False)
    except OSError as error:
        raise BindError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    sock.set_inheritable(True)
    return sock


def make_server(app: Any, shutdown_timeout: float | None = 30.0, log_level: str = "info", access_log: bool = True) -> uvicorn.Server:
    config = uvicorn.Config(
        app,
        timeout_graceful_shutdown=shutdown_timeout,
        log_level=log_level,
        access_log=access_log,
        lifespan="on",
        server_header=False,
    )
    return uvicorn.Server(config)


def base_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}/v1"


class ServerThread:
    """The app served on loopback from a background thread (tests, benchmarks, notebooks).
    ``with ServerThread(app) as server: OpenAI(base_url=server.base_url, ...)``."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, shutdown_timeout: float | None = 30.0) -> None:
        self.socket = bind_socket(host, port)
        self.base_url = base_url(self.socket)
        self.server = make_server(app, shutdown_timeout, log_level="warning", access_log=False)
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, name="specfuse-serve", daemon=True)

    def start(self, timeout: float = 30.0) -> "ServerThread":
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start (see its log)")
            time.sleep(0.02)
        return self

    def begin_shutdown(self) -> None:
        """What SIGTERM does: stop accepting, drain, then cancel what is left."""
        self.server.should_exit = True

    def stop(self, timeout: float | None = 60.0) -> None:
        self.begin_shutdown()
        self._thread.join(timeout)
        self.socket.close()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def __enter__(self) -> "ServerThread":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

