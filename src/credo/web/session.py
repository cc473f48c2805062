"""Web sessions: the API's session cookie, an idle timeout, and CSRF tokens bound to it.

Sessions are those of `credo.services.accounts` (argon2 passwords, hashed tokens, login
throttling). On top of them:

- **Idle timeout.** Every request that carries the session cookie slides the session's
  `expires_at` to `now + idle` (at most once a minute, and never past `created_at +
  session_hours`). A session left alone for `CREDO_SESSION_IDLE_MINUTES` therefore expires
  in the store itself, for pages and API alike.
- **CSRF.** Every form carries a hidden `csrf_token`: an HMAC of the session token (or,
  before login, of a random pre-session cookie). Only someone who holds the HttpOnly cookie
  can compute it, so a page on another site cannot forge a POST. Every unsafe request to a
  page route is checked (`verify_csrf`); API routes under /v1 use bearer keys or the
  SameSite=Lax session cookie and are not forms.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio.to_thread
from fastapi import Request
from sqlalchemy import select, update
from starlette.types import ASGIApp, Receive, Scope, Send

from credo.api.deps import SESSION_COOKIE
from credo.api.errors import DATABASE_UNAVAILABLE, first_line
from credo.domain.errors import PermissionDeniedError
from credo.services.register import Register
from credo.store.tables import sessions

PRESESSION_COOKIE = "credo_presession"
CSRF_FIELD = "csrf_token"
SLACK = timedelta(minutes=1)
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})

log = logging.getLogger("credo.web")


class CsrfError(PermissionDeniedError):
    """A form came without the token of this browser's session."""


def csrf_for(seed: str) -> str:
    """The CSRF token of a session (or pre-session) token."""
    return hmac.new(seed.encode(), b"credo-csrf-v1", hashlib.sha256).hexdigest()


def new_presession() -> str:
    """A random pre-session value, set as a cookie on the login page."""
    return secrets.token_urlsafe(32)


def request_csrf(request: Request) -> str:
    """The token the forms of this page must carry ('' when the browser has no cookie yet)."""
    seed = request.cookies.get(SESSION_COOKIE) or getattr(request.state, "presession", None)
    seed = seed or request.cookies.get(PRESESSION_COOKIE)
    return csrf_for(seed) if seed else ""


async def verify_csrf(request: Request) -> None:
    """Dependency for page routes: refuse an unsafe request without this browser's token."""
    if request.method not in UNSAFE:
        return
    form = await request.form()
    given = form.get(CSRF_FIELD)
    seeds = [request.cookies.get(SESSION_COOKIE), request.cookies.get(PRESESSION_COOKIE)]
    expected = [csrf_for(seed) for seed in seeds if seed]
    if not isinstance(given, str) or not any(hmac.compare_digest(given, e) for e in expected):
        raise CsrfError(
            "this form did not come from your current session (it may have expired): "
            "reload the page and try again"
        )


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def touch_session(register: Register, token: str, *, idle: timedelta, hours: int) -> None:
    """Slide a live session's expiry to `now + idle`, capped at `created_at + hours`."""
    digest = hashlib.sha256(token.encode()).hexdigest()
    now = register.clock.now()
    with register.read() as conn:
        row = conn.execute(
            select(sessions.c.created_at, sessions.c.expires_at).where(
                sessions.c.token_hash == digest
            )
        ).first()
    if row is None or _aware(row.expires_at) <= now:
        return
    target = min(now + idle, _aware(row.created_at) + timedelta(hours=hours))
    if abs(target - _aware(row.expires_at)) < SLACK:
        return
    with register.write() as conn:
        conn.execute(
            update(sessions)
            .where(sessions.c.token_hash == digest, sessions.c.expires_at > now)
            .values(expires_at=target)
        )


class IdleTimeout:
    """ASGI middleware: each request with a session cookie keeps that session alive."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Touch the session, then handle the request."""
        if scope["type"] == "http" and not scope["path"].startswith("/static/"):
            token = _cookie(scope, SESSION_COOKIE)
            state: Any = scope["app"].state
            if token:
                try:
                    await anyio.to_thread.run_sync(
                        lambda: touch_session(
                            state.register,
                            token,
                            idle=timedelta(minutes=state.session_idle_minutes),
                            hours=state.session_hours,
                        )
                    )
                except DATABASE_UNAVAILABLE as exc:
                    # Touching only slides the expiry: the request goes on, and what it
                    # reads of the database answers 503 through the app's handlers.
                    log.warning(
                        "session not kept alive, the database did not answer: %s",
                        first_line(exc),
                    )
        await self.app(scope, receive, send)


def _cookie(scope: Scope, name: str) -> str | None:
    """One cookie's value from the raw request headers."""
    headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
    for key, value in headers:
        if key == b"cookie":
            for part in value.decode("latin-1").split(";"):
                k, _, v = part.strip().partition("=")
                if k == name and v:
                    return v
    return None
