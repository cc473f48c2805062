"""Errors on pages: a clear HTML page (no stack trace); the API keeps problem+json.

`install` wraps the API's handlers (credo.api.errors) so that requests to pages get HTML
and requests under /v1 (and the OpenAPI explorer) still get RFC 9457 problems. A page that
needs a login redirects to /login and comes back afterwards.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from credo.api.errors import (
    DATABASE_UNAVAILABLE,
    _status_for,
    database_down,
    database_error_status,
    problem,
)
from credo.domain.errors import AuthenticationError, CredoError
from credo.web.render import env
from credo.web.security import header_items

Handler = Callable[[Request, Exception], Awaitable[Response]]
API_PREFIXES = ("/v1", "/docs", "/redoc", "/openapi.json", "/healthz")
TITLES = {
    400: "The request was not understood",
    401: "Please log in",
    403: "You may not see this page",
    404: "This page does not exist",
    405: "This address does not take that kind of request",
    409: "This conflicts with what is already on file",
    422: "Some of what you sent is not valid",
    429: "Too many attempts",
    500: "Something went wrong on our side",
    503: "The register is unavailable for a moment",
}
log = logging.getLogger("credo.web")


def is_api(request: Request) -> bool:
    """Whether a request is for the API (problem+json) rather than a page (HTML)."""
    return request.url.path.startswith(API_PREFIXES)


def error_page(request: Request, status: int, detail: str | None = None) -> HTMLResponse:
    """The HTML page for an error status, with a way back."""
    title = TITLES.get(status, "Something went wrong")
    html = env.get_template("error.html").render(
        request=request,
        user=None,
        nav=[],
        path=request.url.path,
        csrf_token="",
        title=title,
        status=status,
        detail=detail,
    )
    return HTMLResponse(html, status_code=status)


def _login_redirect(request: Request) -> RedirectResponse:
    if request.method != "GET":  # a form sent after the session ended: start afresh
        return RedirectResponse("/login?expired=1", status_code=303)
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='/')}&expired=1", status_code=303)


def _wrap(api_handler: Handler, html: Callable[[Request, Exception], Response]) -> Handler:
    async def handle(request: Request, exc: Exception) -> Response:
        if is_api(request):
            return await api_handler(request, exc)
        return html(request, exc)

    return handle


def _credo_html(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CredoError)
    if isinstance(exc, AuthenticationError):
        return _login_redirect(request)
    status = _status_for(exc)
    return error_page(request, status, exc.message)


def _http_html(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    detail = None if status in (404, 405) else str(exc.detail)
    response = error_page(request, status, detail)
    if status == 405 and exc.headers:
        response.headers.update(exc.headers)
    return response


def _invalid_html(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    fields = ", ".join(
        str(err["loc"][-1]) for err in exc.errors() if err.get("loc")
    )  # names only: never echo the values
    return error_page(request, 422, f"Check these fields: {fields}." if fields else None)


def _database_html(request: Request, _exc: Exception) -> Response:
    response = error_page(request, 503, "The register's database did not answer; retry shortly.")
    response.headers["Retry-After"] = "2"
    return response


_DATABASE_PAGES = {
    409: "Someone else changed this first; reload and retry.",
    422: "A value in the form is out of range.",
}


def _database_error_html(request: Request, exc: Exception) -> Response:
    """Any other driver error on a page, judged as the API judges it
    (`database_error_status`); a 500 is logged as a bug."""
    assert isinstance(exc, DBAPIError)
    status = database_error_status(exc)
    if status == 503:
        return _database_html(request, exc)
    if status == 500:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_page(request, status, _DATABASE_PAGES.get(status))


async def server_error(request: Request, exc: Exception) -> Response:
    """Any error no route handled. A database that did not answer, raised in a middleware
    (the session's, say), is the 503 a route would give; anything else is unexpected: logged
    with its trace, answered without one."""
    response: Response
    if isinstance(exc, DATABASE_UNAVAILABLE):
        api = is_api(request)
        response = await database_down(request, exc) if api else _database_html(request, exc)
    else:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        if is_api(request):
            response = problem(500, "an unexpected error occurred; it was logged")
        else:
            response = error_page(request, 500, None)
    for name, value in header_items(request.url.path, request.url.scheme):
        response.headers.setdefault(name, value)
    return response


def install(app: FastAPI) -> None:
    """Make the app's error handlers answer pages in HTML (after credo.api.errors.install)."""
    handlers: dict[Any, Any] = app.exception_handlers
    for exc_class, html in (
        (CredoError, _credo_html),
        (StarletteHTTPException, _http_html),
        (RequestValidationError, _invalid_html),
        *((unavailable, _database_html) for unavailable in DATABASE_UNAVAILABLE),
        (DBAPIError, _database_error_html),
    ):
        api_handler = handlers.get(exc_class)
        if api_handler is not None:
            app.add_exception_handler(exc_class, _wrap(api_handler, html))
    app.add_exception_handler(Exception, server_error)
