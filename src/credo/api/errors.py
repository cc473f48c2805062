"""The one table mapping credo's errors to HTTP statuses, rendered as problem+json (RFC 9457)."""

from __future__ import annotations

import logging
from typing import Any

import psycopg
import psycopg_pool
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    IntegrityError,
    InterfaceError,
    OperationalError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from credo.domain.errors import (
    AuthenticationError,
    ConflictError,
    CredoError,
    NoActivePolicyError,
    NotFoundError,
    PermissionDeniedError,
    PolicyError,
    ThrottledError,
    ValidationError,
)

STATUS: dict[type[CredoError], int] = {
    ValidationError: 422,
    PolicyError: 422,
    NotFoundError: 404,
    ConflictError: 409,
    PermissionDeniedError: 403,
    AuthenticationError: 401,
    NoActivePolicyError: 503,
    ThrottledError: 429,
}

PROBLEM = "application/problem+json"
RETRY_AFTER = "2"  # seconds: a restarted PostgreSQL usually answers again within this
log = logging.getLogger("credo.api")


def problem(
    status: int,
    title: str,
    detail: str | None = None,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """A problem+json response."""
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _status_for(exc: CredoError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


async def _credo_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CredoError)
    status = _status_for(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    errors = [{"field": p.location, "message": p.message} for p in exc.problems]
    return problem(status, exc.message, errors=errors or None, headers=headers)


async def _request_invalid(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {
            "field": ".".join(str(part) for part in err["loc"] if part != "body"),
            "message": err["msg"],
        }
        for err in exc.errors()
    ]
    return problem(422, "the request is not valid", errors=errors)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return problem(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))


# The database did not answer: through SQLAlchemy, or from the hot paths' driver connections
# (credo.store.hotpath). A 503 wherever it is raised, in a route or in a middleware (the
# session's, credo.web.errors.server_error).
DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (
    OperationalError,
    InterfaceError,
    PoolTimeoutError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
    psycopg_pool.PoolTimeout,
)


async def database_down(_request: Request, exc: Exception) -> JSONResponse:
    """The database did not answer (restart, lost connection, no pooled connection in time):
    a clean 503 that tells the client when to retry; the pool reconnects by itself."""
    log.warning("database unavailable: %s", first_line(exc))
    return problem(
        503,
        "the register's database is unavailable; retry shortly",
        headers={"Retry-After": RETRY_AFTER},
    )


def database_error_status(exc: DBAPIError) -> int:
    """What a driver error means for the request, pages and API alike: a lost connection
    503, a concurrent write that lost a uniqueness race 409, a value the database cannot
    hold (a number out of its column's range, a NUL character in text) 422, the rest 500."""
    if exc.connection_invalidated:
        return 503
    if isinstance(exc, IntegrityError):
        return 409
    if isinstance(exc, DataError):
        return 422
    return 500


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    """Any other driver error, as `database_error_status` judges it, without internals."""
    assert isinstance(exc, DBAPIError)
    status = database_error_status(exc)
    if status == 503:
        return await database_down(request, exc)
    if status == 409:
        return problem(
            409,
            "a concurrent write stored the same thing first; retry to see the stored state",
            headers={"Retry-After": "0"},
        )
    if status == 422:
        return await _out_of_range(request, exc)
    return await _unexpected(request, exc)


async def _out_of_range(_request: Request, exc: Exception) -> JSONResponse:
    """A value from the request beyond what the store or the calendar holds (an id past the
    column's range, a year past 9999, a NUL character in text): the request is at fault."""
    log.warning("value out of range: %s", first_line(exc))
    return problem(422, "a value in the request is out of range or cannot be stored")


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    """A bug: logged with its traceback, answered as problem+json without internals."""
    log.error("unexpected error", exc_info=exc)
    return problem(500, "internal error; it was logged")


def first_line(exc: Exception) -> str:
    """An error's first line, for a one-line log entry."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def install(app: FastAPI) -> None:
    """Register the handlers on an app."""
    app.add_exception_handler(CredoError, _credo_error)
    app.add_exception_handler(RequestValidationError, _request_invalid)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    # Most specific first in the MRO lookup: OperationalError and InterfaceError are
    # DBAPIErrors; the pool's TimeoutError is not one.
    for unavailable in DATABASE_UNAVAILABLE:
        app.add_exception_handler(unavailable, database_down)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(psycopg.DataError, _out_of_range)
    app.add_exception_handler(OverflowError, _out_of_range)
    app.add_exception_handler(Exception, _unexpected)
