"""What happens around a request: a client that goes away stops its generation, shutdown drains then
cancels, concurrent requests keep their own answers, the in-flight cap answers 429, and the CLI
refuses bad flags in one line and drains on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest
from openai import AsyncOpenAI, OpenAI

from specfuse_core.cli import main
from specfuse_core.serve import ServeLimits, ServerThread, ServeSettings, create_app

from .conftest import LIMITS, MODEL, ensemble_over

ROOT = Path(__file__).resolve().parents[2]
HELLO = [{"role": "user", "content": "Tell me about rivers."}]
LONG = {"model": MODEL, "messages": HELLO, "max_tokens": LIMITS.max_tokens_cap}  # a few seconds on these models


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def only_request(app, seen: str = ""):
    """The engine request behind the one request in flight (waits for it to open); ``seen``: what the
    client got so far, for the failure message."""
    wait_until(lambda: any(s is not None for s in app.state.inflight.streams.values()), 30, f"the request to open ({seen})" if seen else "the request to open")
    return next(s for s in app.state.inflight.streams.values() if s is not None).request


def assert_stopped_early(app, request) -> None:
    wait_until(lambda: len(app.state.inflight) == 0, 15, "the generation to stop")
    assert request.done and request.finish_reason is None  # closed, not run to its end
    rounds = request.rounds
    time.sleep(0.5)
    assert request.rounds == rounds  # nothing runs on after the close
    assert request.usage().completion_tokens < LIMITS.max_tokens_cap


@pytest.fixture()
def ensemble(small_members):
    """An ensemble of this test's own over the small members: a request still finishing on the shared
    ``small_ensemble`` (another test's) cannot join its batches, so a long request here runs alone and
    its greedy answer (which runs to the cap) cannot change with what else was in flight."""
    return ensemble_over(small_members)


@pytest.fixture()
def app(ensemble):
    return create_app(ensemble, ServeSettings(model_name=MODEL, limits=LIMITS))


def test_client_disconnect_mid_stream_stops_the_generation(app):
    with ServerThread(app) as server:
        with httpx.stream("POST", f"{server.base_url}/chat/completions", json={**LONG, "stream": True}, timeout=60) as response:
            lines = []
            for line in response.iter_lines():
                lines.append(line)
                if '"specfuse"' in line:  # the first accepted segment has arrived
                    break
            request = only_request(app, f"HTTP {response.status_code}, {len(lines)} lines, the last: {lines[-2:]!r}"[:2000])
            assert not request.done
        # leaving the block closes the connection half-way through the stream
        assert_stopped_early(app, request)


def test_client_disconnect_while_waiting_for_a_whole_completion_stops_it(app):
    with ServerThread(app) as server:
        outcome: list[BaseException] = []

        def impatient() -> None:
            try:
                httpx.post(f"{server.base_url}/chat/completions", json=LONG, timeout=httpx.Timeout(30, read=2.0))
            except httpx.ReadTimeout as error:  # gives up and closes the connection
                outcome.append(error)

        thread = threading.Thread(target=impatient)
        thread.start()
        request = only_request(app)
        thread.join(30)
        assert outcome, "the request finished before the client gave up"
        assert_stopped_early(app, request)


def stream_in_thread(server: ServerThread, body: dict, first_segment: threading.Event, chunks: list, errors: list) -> threading.Thread:
    def consume() -> None:
        try:
            with OpenAI(base_url=server.base_url, api_key="x", max_retries=0, timeout=120) as client:
                for chunk in client.chat.completions.create(stream=True, **body):
                    chunks.append(chunk)
                    if getattr(chunk, "specfuse", None):
                        first_segment.set()
        except Exception as error:  # noqa: BLE001 - the test inspects it
            errors.append(error)
        finally:
            first_segment.set()

    thread = threading.Thread(target=consume)
    thread.start()
    return thread


def refuses_connections(server: ServerThread) -> bool:
    try:
        httpx.get(server.base_url.removesuffix("/v1") + "/health", timeout=2)
    except httpx.TransportError:
        return True
    return False


def test_shutdown_lets_in_flight_streams_finish(app, ensemble):
    body = {"model": MODEL, "messages": HELLO, "max_tokens": 24}
    alone = ensemble.generate(HELLO, max_new_tokens=24)
    server = ServerThread(app, shutdown_timeout=120).start()
    first, chunks, errors = threading.Event(), [], []
    thread = stream_in_thread(server, body, first, chunks, errors)
    assert first.wait(60) and not errors
    server.begin_shutdown()
    wait_until(lambda: refuses_connections(server), 10, "new connections to be refused")
    thread.join(120)
    server.stop()
    assert not errors and not server.running
    assert chunks[-1].choices[0].finish_reason == "length"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == alone.text


def test_shutdown_cancels_what_is_still_running_after_the_timeout(app):
    server = ServerThread(app, shutdown_timeout=1.0).start()
    first, chunks, errors = threading.Event(), [], []
    thread = stream_in_thread(server, LONG, first, chunks, errors)
    assert first.wait(60) and not errors
    request = only_request(app)
    started = time.monotonic()
    server.stop(timeout=30)
    assert not server.running and time.monotonic() - started < 30
    thread.join(30)
    assert errors, "the client saw a complete answer"
    assert isinstance(errors[0], (httpx.RemoteProtocolError, openai.APIConnectionError)), repr(errors[0])  # closed mid-stream
    assert all(c.choices == [] or c.choices[0].finish_reason is None for c in chunks)
    assert request.done and request.finish_reason is None


async def test_concurrent_streams_each_get_their_own_answer(small_server, small_ensemble):
    prompts = [[{"role": "user", "content": f"Question {i}: name a colour."}] for i in range(4)]
    alone = [small_ensemble.generate(p, max_new_tokens=8).text for p in prompts]
    assert len(set(alone)) == len(alone)  # else a mix-up could go unnoticed

    async with AsyncOpenAI(base_url=small_server.base_url, api_key="x", max_retries=0, timeout=120) as client:

        async def ask(messages) -> str:
            stream = await client.chat.completions.create(model=MODEL, messages=messages, max_tokens=8, stream=True)
            return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

        assert await asyncio.gather(*(ask(p) for p in prompts)) == alone


def test_in_flight_cap_answers_429(ensemble):
    limits = ServeLimits(max_tokens_cap=400, default_max_tokens=12, max_concurrent_requests=1)
    app = create_app(ensemble, ServeSettings(model_name=MODEL, limits=limits))
    with ServerThread(app, shutdown_timeout=0.5) as server:
        first, chunks, errors = threading.Event(), [], []
        thread = stream_in_thread(server, LONG, first, chunks, errors)
        request = only_request(app)
        with OpenAI(base_url=server.base_url, api_key="x", max_retries=0) as client:
            with pytest.raises(openai.RateLimitError) as caught:
                client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=4)
        assert caught.value.response.headers["retry-after"] == "1"
        request.close()  # let the first one end
        thread.join(30)
        wait_until(lambda: len(app.state.inflight) == 0, 10, "the slot to free")
        with OpenAI(base_url=server.base_url, api_key="x", max_retries=0) as client:
            assert client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=4).choices[0].message.content


# ---------------------------------------------------------------------- the CLI


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_cli_refuses_an_unset_api_key_variable_before_loading(capsys, monkeypatch):
    monkeypatch.delenv("SPECFUSE_TEST_NO_SUCH_KEY", raising=False)
    assert main(["serve", "--api-key-env", "SPECFUSE_TEST_NO_SUCH_KEY", "--port", "0"]) == 2
    assert "SPECFUSE_TEST_NO_SUCH_KEY" in one_line_error(capsys)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--max-tokens-cap", "8", "--default-max-tokens", "16"], "--default-max-tokens (16) is over --max-tokens-cap (8)"),
        (["--max-concurrent", "0"], "--max-concurrent must be at least 1"),
        (["--segment-tokens", "0"], "--segment-tokens"),
        (["--shutdown-timeout", "-1"], "--shutdown-timeout"),
        (["--preset", "nope"], "nope"),
    ],
)
def test_cli_bad_flags_exit_2_in_one_line(args, expected, capsys):
    assert main(["serve", "--port", "0", *args]) == 2
    assert expected in one_line_error(capsys)


def test_cli_port_in_use_exits_2_in_one_line(capsys):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in one_line_error(capsys)


@pytest.fixture(scope="module")
def model_dir(small_members, tmp_path_factory):
    """One of the small members saved as a model directory, for `specfuse serve --model`."""
    member = small_members[0]
    path = tmp_path_factory.mktemp("models") / "tiny-llama"
    member.model.save_pretrained(path)
    member.tokenizer.save_pretrained(path)
    return path


def test_cli_serves_and_drains_on_sigterm(model_dir):
    env = {**os.environ, "SPECFUSE_TEST_KEY": "k-123", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "specfuse_core.cli", "serve", "--model", str(model_dir), "--port", "0",
               "--api-key-env", "SPECFUSE_TEST_KEY", "--served-model-name", "mine", "--shutdown-timeout", "120"]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    try:
        banner = process.stderr.readline()
        match = re.search(r"on (http://\S+/v1) with API key", banner)
        assert match, banner
        url = match.group(1)
        wait_until(lambda: not _refused(url), 60, "the server to accept")
        with OpenAI(base_url=url, api_key="k-123", max_retries=0, timeout=120) as client:
            stream = client.chat.completions.create(model="mine", messages=HELLO, max_tokens=24, stream=True)
            chunks = [next(stream), next(stream)]  # the role chunk and the first segment
            process.send_signal(signal.SIGTERM)
            chunks += list(stream)  # still served to the end
        assert chunks[-1].choices[0].finish_reason in ("length", "stop")
        # uvicorn re-raises the signal once drained, so a supervisor sees how the process ended
        assert process.wait(60) == -signal.SIGTERM
        log = process.stderr.read()
        assert "Waiting for connections to close" in log or "Shutting down" in log
        assert "Finished server process" in log and "Traceback" not in log
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stderr.close()


def _refused(url: str) -> bool:
    try:
        httpx.get(url.removesuffix("/v1") + "/health", timeout=2)
    except httpx.TransportError:
        return True
    return False
