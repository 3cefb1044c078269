"""The requests being generated right now: a cap on how many (more get 429), and each one's stream,
so that shutdown and tests can see what is running."""

from __future__ import annotations

import itertools
from typing import Any

from .errors import APIError


class InFlight:
    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.streams: dict[int, Any] = {}  # ticket -> the engine stream (None while it opens)
        self._tickets = itertools.count()
        self.total = 0  # requests admitted since start

    def __len__(self) -> int:
        return len(self.streams)

    def admit(self) -> int:
        """A ticket for one request, or 429 when ``cap`` are already in flight. Event-loop only."""
        if len(self.streams) >= self.cap:
            raise APIError(
                429, f"the server is busy: {self.cap} requests are in flight; retry shortly",
                code="rate_limit_exceeded", type="requests", headers={"Retry-After": "1"},
            )
        ticket = next(self._tickets)
        self.streams[ticket] = None
        self.total += 1
        return ticket

    def attach(self, ticket: int, stream: Any) -> None:
        self.streams[ticket] = stream

    def release(self, ticket: int) -> None:
        self.streams.pop(ticket, None)
