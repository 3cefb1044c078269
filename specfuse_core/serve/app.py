"""The ASGI application: OpenAI's ``/v1/chat/completions`` and ``/v1/models`` over one ensemble.

Built only on the ensemble's public API (``astream``, ``describe``, ``config``): each request is one
``astream``, so requests run concurrently at the HTTP level and the engine decides how their rounds
share the models. A request's generation stops when its client goes away or the server gives up on
it at shutdown: the stream is closed, which frees its caches within one round."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ..engine import SpecFuse
from ..errors import ContextWindowExceededError, SpecFuseError, StructuredOutputError, UnknownMemberNameError
from ..integration import SegmentStep, asegment_steps
from .auth import check_api_key
from .errors import APIError
from .inflight import InFlight
from .limits import ServeLimits, read_body
from .mapping import GenerationPlan, plan_request
from .memory import limit_malloc_arenas
from .responses import ChunkWriter, completion_body, model_body, models_body
from .schemas import parse_request
from .sse import DONE, sse_event
from .tools import structured_output_failed

logger = logging.getLogger("specfuse.serve")


@dataclass(frozen=True)
class ServeSettings:
    model_name: str = "specfuse"
    limits: ServeLimits = field(default_factory=ServeLimits)
    api_key: str | None = None  # None: no authentication


def create_app(ensemble: SpecFuse, settings: ServeSettings | None = None) -> Starlette:
    """An OpenAI-compatible app serving ``ensemble`` under ``settings.model_name``. Caps the process's
    malloc arenas (glibc) so memory stays flat under load (:mod:`.memory`)."""
    settings = settings or ServeSettings()
    limit_malloc_arenas()
    handlers = _Handlers(ensemble, settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Opening a request (validation, routing) and the app's other blocking calls use the default pool;
        # sized for every admitted request so openings never queue behind each other. Rounds run on the
        # ensemble's own threads (SpecFuse.astep).
        pool = ThreadPoolExecutor(settings.limits.max_concurrent_requests + 4, thread_name_prefix="specfuse-serve")
        asyncio.get_running_loop().set_default_executor(pool)
        yield

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", handlers.guarded(handlers.chat_completions), methods=["POST"]),
            Route("/v1/models", handlers.guarded(handlers.models), methods=["GET"]),
            Route("/v1/models/{model:path}", handlers.guarded(handlers.model), methods=["GET"]),
            Route("/health", handlers.health, methods=["GET"]),
        ],
        exception_handlers={HTTPException: _http_error},
        lifespan=lifespan,
    )
    app.state.inflight = handlers.inflight
    app.state.settings = settings
    return app


async def _http_error(request: Request, error: Exception) -> Response:
    """Starlette's own 404/405 in OpenAI's shape, so clients show a readable message."""
    assert isinstance(error, HTTPException)
    return APIError(error.status_code, f"{request.method} {request.url.path}: {error.detail}", headers=error.headers).response()


class _Handlers:
    def __init__(self, ensemble: SpecFuse, settings: ServeSettings) -> None:
        self.ensemble = ensemble
        self.settings = settings
        self.inflight = InFlight(settings.limits.max_concurrent_requests)
        self.created = int(time.time())

    def guarded(self, handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        """Authentication first; an APIError anywhere becomes its response; a bug becomes a logged 500."""

        async def endpoint(request: Request) -> Response:
            try:
                check_api_key(request, self.settings.api_key)
                return await handler(request)
            except APIError as error:
                return error.response()
            except Exception:
                logger.exception("internal error in %s", request.url.path)
                return APIError(500, "internal server error (see the server log)").response()

        return endpoint

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "in_flight": len(self.inflight)})

    async def models(self, request: Request) -> Response:
        return JSONResponse(models_body(self.settings.model_name, self.created, self.ensemble.describe()))

    async def model(self, request: Request) -> Response:
        name = request.path_params["model"]
        if name != self.settings.model_name:
            raise APIError(404, f"The model {name!r} does not exist; this server serves {self.settings.model_name!r}", param="model", code="model_not_found")
        return JSONResponse(model_body(name, self.created, self.ensemble.describe()))

    async def chat_completions(self, request: Request) -> Response:
        limits = self.settings.limits
        body = await read_body(request, limits.max_body_bytes)
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:  # RecursionError: absurd nesting
            raise APIError(400, f"We could not parse the JSON body of your request: {error or type(error).__name__}") from None
        plan = plan_request(parse_request(payload), self.settings.model_name, limits, self.ensemble.config)
        ticket = self.inflight.admit()
        try:
            stream = await self._open(plan)
            self.inflight.attach(ticket, stream)
        except BaseException:
            self.inflight.release(ticket)
            raise
        if plan.stream:
            return _GenerationStream(self._chunks(stream, plan), on_close=lambda: self._finish(ticket, stream))
        try:
            return await self._complete(request, stream)
        finally:
            await self._finish(ticket, stream)

    async def _open(self, plan: GenerationPlan) -> Any:
        """Start the request (validation and tokenising, in a worker thread); its mistakes are 400s."""
        try:
            return await asyncio.to_thread(self.ensemble.astream, plan.messages, **plan.overrides, **plan.output)
        except ContextWindowExceededError as error:
            raise APIError(400, str(error), param="messages", code="context_length_exceeded") from None
        except ValidationError as error:  # a setting the engine's config refuses in combination
            raise APIError(400, str(error.errors(include_url=False)[0]["msg"]), param="specfuse") from None
        except UnknownMemberNameError as error:  # member_weights, roles or lead_member in the extension
            raise APIError(400, str(error), param="specfuse") from None
        except (SpecFuseError, ValueError) as error:
            raise APIError(400, str(error), param="messages") from None

    async def _finish(self, ticket: int, stream: Any) -> None:
        await stream.aclose()  # a no-op once finished; otherwise stops the generation within one round
        self.inflight.release(ticket)

    async def _complete(self, request: Request, stream: Any) -> Response:
        """Generate to the end, unless the client disconnects first (then stop and answer nothing)."""

        async def collect() -> list[SegmentStep]:
            return [step async for step in asegment_steps(stream)]

        generation = asyncio.ensure_future(collect())
        gone = asyncio.ensure_future(_disconnected(request.receive))
        try:
            await asyncio.wait({generation, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (generation, gone):
                task.cancel()
        if not generation.done() or generation.cancelled():
            logger.info("client went away; its generation was stopped")
            return Response(status_code=499)  # nobody reads it
        try:
            steps = generation.result()
        except StructuredOutputError as error:
            raise structured_output_failed(error) from None
        except SpecFuseError as error:  # every member failed, or none could propose
            raise APIError(500, str(error), code="ensemble_failed") from None
        return JSONResponse(completion_body(self.settings.model_name, stream.result(), [step.event for step in steps]))

    async def _chunks(self, stream: Any, plan: GenerationPlan) -> AsyncIterator[bytes]:
        writer = ChunkWriter(self.settings.model_name, plan.include_usage)
        yield sse_event(writer.role())
        try:
            async for step in asegment_steps(stream):
                yield sse_event(writer.segment(step))
        except StructuredOutputError as error:
            yield sse_event(structured_output_failed(error).body())
            return
        except SpecFuseError as error:  # headers are sent: report it in the stream, as OpenAI does
            yield sse_event(APIError(500, str(error), code="ensemble_failed").body())
            return
        except Exception:
            logger.exception("internal error while streaming")
            yield sse_event(APIError(500, "internal server error (see the server log)").body())
            return
        result = stream.result()
        yield sse_event(writer.finish(result))
        if plan.include_usage:
            yield sse_event(writer.usage(result))
        yield DONE


async def _disconnected(receive: Receive) -> None:
    """Returns when the client disconnects (the body has been read, so nothing else arrives)."""
    while (await receive())["type"] != "http.disconnect":
        pass


class _GenerationStream(StreamingResponse):
    """An SSE response that always runs ``on_close`` (stop the generation, free the slot): after the
    last chunk, when the client disconnects, and when the server cancels it at shutdown."""

    def __init__(self, chunks: AsyncIterator[bytes], on_close: Callable[[], Awaitable[None]]) -> None:
        super().__init__(chunks, media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self._chunks = chunks
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._chunks.aclose()  # type: ignore[attr-defined]
            await self._on_close()
