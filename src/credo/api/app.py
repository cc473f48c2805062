"""The FastAPI application factory."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from credo import __version__
from credo.api import (
    auth,
    cases,
    checks,
    docs,
    errors,
    lists,
    me,
    measures,
    policies,
    promotions,
    public,
    records,
    standing,
    users,
)
from credo.api.ratelimit import RateLimit
from credo.api.standing_fast import answer_plain_lookup
from credo.services.register import Register
from credo.store.hotpath import close_async


class CredoAPI(FastAPI):
    """FastAPI, with the standing lookup's short way in front of everything else
    (credo.api.standing_fast); `short_way = False` leaves every request to FastAPI."""

    short_way = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer the plain standing lookup at once; pass everything else to FastAPI."""
        if self.short_way and await answer_plain_lookup(self, scope, receive, send):
            return
        await super().__call__(scope, receive, send)


def create_app(
    register: Register | None = None,
    *,
    session_hours: int | None = None,
    background: bool = False,
    public_per_minute: int | None = None,
) -> FastAPI:
    """Build the app around a register (by default the one the settings describe).

    `background` runs the periodic sweep and notice delivery (as `credo serve` does).
    """
    from credo.settings import Settings

    settings = Settings()
    if register is None:
        from credo.bootstrap import build_register

        register = build_register(settings, migrate=False)
        background = True

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        worker = None
        if background:
            from credo.api.background import Background
            from credo.services.notices import sender_from_settings

            worker = Background(register, sender_from_settings(settings))
            worker.start()
        # Everything alive now (the app, its routes and schemas, the policy) lives as long as
        # the process: the collector need not walk it again on every full collection.
        gc.collect()
        gc.freeze()
        yield
        if worker is not None:
            worker.close()
        await close_async(register.engine)

    app = CredoAPI(
        lifespan=lifespan,
        title="credo",
        version=__version__,
        summary="An integrity register for public institutions, with due process built in.",
        docs_url=None,
        redoc_url=None,
    )
    app.state.register = register
    app.state.session_hours = session_hours or settings.session_hours
    app.state.public_rate_limit = RateLimit(
        public_per_minute or settings.public_requests_per_minute
    )
    errors.install(app)
    docs.install(app)
    app.include_router(records.router)
    app.include_router(standing.router)
    app.include_router(auth.router)
    app.include_router(me.router)
    app.include_router(cases.router)
    app.include_router(users.router)
    app.include_router(lists.router)
    app.include_router(measures.router)
    app.include_router(checks.router)
    app.include_router(promotions.router)
    app.include_router(public.router)
    app.include_router(policies.router)
    from credo import web

    web.install(app, idle_minutes=settings.session_idle_minutes)  # pages, headers, error pages

    @app.get("/healthz", tags=["service"])
    def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    return app
