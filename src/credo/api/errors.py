"""The one table mapping credo's errors to HTTP statuses, rendered as problem+json (RFC 9457)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError
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


async def _database_down(_request: Request, _exc: Exception) -> JSONResponse:
    return problem(
        503, "the register's database is unavailable; retry shortly", headers={"Retry-After": "2"}
    )


def install(app: FastAPI) -> None:
    """Register the handlers on an app."""
    app.add_exception_handler(CredoError, _credo_error)
    app.add_exception_handler(RequestValidationError, _request_invalid)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(OperationalError, _database_down)
    app.add_exception_handler(DBAPIError, _database_down)
