"""The standing lookup's short way through the ASGI stack, for the request it serves most.

`GET /v1/subjects/{id}/standing?purpose=P[&as_of=YYYY-MM-DD]` with an API key, on
PostgreSQL, is the request departments send thousands of times a minute. Through FastAPI
it pays for routing past every other route, the request object, the dependency solver, the
query parameters' validation models and the exception middleware: about half of a worker's
CPU for the request, measured with py-spy under wrk (docs/performance.md).

`answer_plain_lookup` answers exactly that request itself, with the same service call
(`query_standing_async`: the key, the purpose and the subject checked in the promised
order, the inquiry committed before the answer leaves), the same JSON body and the same
error answers (the app's own exception handlers, problem+json). Everything else, and every
variant of this request it does not recognise as plainly well-formed (a session cookie
instead of a key, a missing, repeated or over-long purpose, a date in any other form, a
trailing slash, SQLite), goes on to FastAPI unchanged, which answers it as before: the
OpenAPI schema, the validation errors and their wording stay FastAPI's. The tests in
tests/api/test_standing_fast_path.py hold the two ways equal, answer for answer.

The app calls it before anything else (`credo.api.app.CredoAPI`), so none of the
middlewares runs for the requests it answers: not Starlette's and FastAPI's own (server
errors, exception telemetry, body limit) nor credo's (security headers, session idle
timeout). It adds the security headers itself, the same list in the same order, and a
request with a session cookie is never its own. Under load, the middleware layers cost a
worker about 6 % of its CPU per lookup (py-spy, docs/performance.md).
"""

from __future__ import annotations

import json
import re
from datetime import date
from typing import Any
from urllib.parse import parse_qsl

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from credo.services.register import Register
from credo.services.standing import query_standing_async
from credo.store.db import is_sqlite
from credo.web.security import apply_headers, raw_headers

PREFIX = "/v1/subjects/"
SUFFIX = "/standing"
PURPOSE_MAX = 64  # the route's `max_length` for purpose
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_JSON = [(b"content-type", b"application/json")]
# The body as FastAPI's JSONResponse writes it, by one encoder made once
_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


async def answer_plain_lookup(app: Any, scope: Scope, receive: Receive, send: Send) -> bool:
    """Answer the request here when it is the plain lookup (True); else leave it (False).

    Called by the app before anything else (`credo.api.app.CredoAPI`): no middleware runs for
    the requests answered here, so their answers carry the security headers from here.
    """
    if scope["type"] != "http":
        return False
    ask = _plain_lookup(scope)
    if ask is None:
        return False
    register: Register = app.state.register
    if is_sqlite(register.engine):
        return False
    scope["app"] = app
    scheme = scope.get("scheme", "http")
    subject_id, purpose, as_of, key = ask
    try:
        shown = await query_standing_async(
            register, api_key=key, subject_id=subject_id, purpose_id=purpose, as_of=as_of
        )
    except Exception as exc:  # answered by the app's own handler, as FastAPI would
        response = await _handled(scope, exc)
    else:
        body = _ENCODE(shown).encode()
        secure = raw_headers(scope["path"], scheme)
        headers = [(b"content-length", str(len(body)).encode()), *_JSON, *secure]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return True

    async def send_secured(message: Message) -> None:
        if message["type"] == "http.response.start":
            apply_headers(MutableHeaders(scope=message), scope["path"], scheme)
        await send(message)

    await response(scope, receive, send_secured)
    return True


def _plain_lookup(scope: Scope) -> tuple[str, str, date | None, str] | None:
    """(subject, purpose, as_of, key) of a plainly well-formed lookup, else None."""
    path: str = scope["path"]
    if (
        scope["method"] != "GET"
        or not path.startswith(PREFIX)
        or not path.endswith(SUFFIX)
        or scope.get("root_path")
    ):
        return None
    subject_id = path[len(PREFIX) : -len(SUFFIX)]
    if not subject_id or "/" in subject_id:
        return None
    key = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            if key is not None:
                return None
            scheme, _, credentials = value.decode("latin-1").partition(" ")
            key = credentials.strip()  # as FastAPI's HTTPBearer reads it
            if scheme.lower() != "bearer" or not key.startswith("credo_") or key.count("_") < 2:
                return None  # no key, or a malformed one: FastAPI's path answers 401
        elif name == b"cookie":
            return None  # a session may be kept alive or refused on the way: FastAPI's path
    if key is None:
        return None
    params = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
    found: dict[str, str] = {}
    for name, value in params:
        if name in ("purpose", "as_of"):
            if name in found:
                return None
            found[name] = value
    purpose = found.get("purpose")
    if purpose is None or not 0 < len(purpose) <= PURPOSE_MAX:
        return None
    as_of = None
    if "as_of" in found:
        text = found["as_of"]
        if not _DAY.fullmatch(text):
            return None
        try:
            as_of = date.fromisoformat(text)
        except ValueError:
            return None
    return subject_id, purpose, as_of, key


async def _handled(scope: Scope, exc: Exception) -> Response:
    """The answer the app's exception handlers give for `exc` (most specific class first)."""
    handlers: dict[Any, Any] = scope["app"].exception_handlers
    for cls in type(exc).__mro__:
        handler = handlers.get(cls)
        if handler is not None:
            response: Response = await handler(Request(scope), exc)
            return response
    raise exc  # pragma: no cover - the app handles Exception itself


__all__ = ["answer_plain_lookup"]
