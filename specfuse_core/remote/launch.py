"""Start and stop a llama-cpp-python completions server on loopback (tests, benchmarks, quick local
setups). Production servers are run by their operators: see docs/scaling.md."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from .errors import RemoteUnavailableError


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LlamaCppServer:
    """``python -m llama_cpp.server`` serving one GGUF file as ``alias`` on 127.0.0.1.

    ``logits_all`` stays on (the server's default): echoed prompt log-probs need every position's
    logits. Use as a context manager, or call :meth:`start` / :meth:`stop`.
    """

    def __init__(
        self, gguf: str | Path, alias: str, *, n_threads: int = 1, n_ctx: int = 2048, port: int | None = None,
        log_path: str | Path | None = None,
    ) -> None:
        self.gguf = Path(gguf)
        self.alias = alias
        self.n_threads = n_threads
        self.n_ctx = n_ctx
        self.port = port or free_port()
        self.log_path = Path(log_path) if log_path else None
        self.process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(self.gguf), "--model_alias", self.alias,
            "--host", "127.0.0.1", "--port", str(self.port),
            "--n_ctx", str(self.n_ctx), "--n_threads", str(self.n_threads), "--n_threads_batch", str(self.n_threads),
            "--logits_all", "true", "--verbose", "false",
        ]

    def start(self, ready_timeout_s: float = 120.0) -> "LlamaCppServer":
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        env = dict(os.environ, OMP_NUM_THREADS=str(self.n_threads))
        self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.wait_ready(ready_timeout_s)
        return self

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RemoteUnavailableError(
                    f"llama_cpp.server exited with code {self.process.returncode} before serving "
                    f"(log: {self.log_path or 'not kept'}); is llama-cpp-python[server] installed "
                    "(.ci/install_llama_cpp_server.sh)?"
                )
            try:
                if httpx.get(f"{self.base_url}/v1/models", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RemoteUnavailableError(f"llama_cpp.server on port {self.port} was not ready within {timeout_s:.0f} s")

    def kill(self) -> None:
        """SIGKILL, as a crash would: no graceful shutdown, open connections are reset."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()

    def __enter__(self) -> "LlamaCppServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
