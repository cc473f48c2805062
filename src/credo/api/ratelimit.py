"""A per-client sliding-window rate limit for the endpoints anyone may call."""

from __future__ import annotations

import threading
import time
from collections import deque

from fastapi import Request

from credo.domain.errors import ThrottledError


class RateLimit:
    """At most `per_minute` requests per client address in any 60 seconds (per process).

    >>> limit = RateLimit(60)
    >>> limit.hit("127.0.0.1")  # raises ThrottledError on the 61st hit within a minute
    """

    def __init__(self, per_minute: int, clock: object = time.monotonic) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, client: str) -> None:
        """Count one request from `client`, or refuse it."""
        now: float = self._clock()  # type: ignore[operator]
        with self._lock:
            hits = self._hits.setdefault(client, deque())
            while hits and hits[0] <= now - 60:
                hits.popleft()
            if len(hits) >= self.per_minute:
                wait = int(hits[0] + 60 - now) + 1
                raise ThrottledError(
                    f"too many requests from {client}: at most {self.per_minute} a minute; "
                    f"try again in {wait} s"
                )
            hits.append(now)
            if len(self._hits) > 100_000:  # forget idle clients
                for key in [k for k, v in self._hits.items() if not v or v[-1] <= now - 60]:
                    del self._hits[key]

    def __call__(self, request: Request) -> None:
        """FastAPI dependency: limit by the client's address."""
        self.hit(request.client.host if request.client else "unknown")
