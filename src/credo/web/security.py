"""Security headers on every response, pages and API alike.

The Content-Security-Policy allows scripts and styles from credo itself only: no inline
script, no CDN. Two kinds of page are not credo's own markup and get a policy of their own:
the OpenAPI explorer at /docs (Swagger UI served by credo itself, with one inline
script, allowed by its hash) and the printable file (`/v1/me/file?format=html`, whose inline
style is allowed by its hash). No user input reaches those inline blocks.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
}
DOCS_PATHS = ("/docs", "/docs/oauth2-redirect", "/redoc")
STYLED_PATHS = ("/v1/me/file", "/me/file")
_SCRIPT = re.compile(rb"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.S | re.I)
_STYLE = re.compile(rb"<style[^>]*>(.*?)</style>", re.S | re.I)


def _hashes(pattern: re.Pattern[bytes], body: bytes) -> list[str]:
    return [
        "'sha256-" + base64.b64encode(hashlib.sha256(m.group(1)).digest()).decode() + "'"
        for m in pattern.finditer(body)
    ]


def docs_csp(body: bytes) -> str:
    """The policy for the API explorer (served by credo): its inline script by hash."""
    scripts = " ".join(_hashes(_SCRIPT, body))
    return (
        f"default-src 'self'; script-src 'self' {scripts}; "
        "style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    )


def styled_csp(body: bytes) -> str:
    """The default policy plus the document's own inline styles, by hash."""
    styles = " ".join(_hashes(_STYLE, body))
    return CSP.replace("style-src 'self'", f"style-src 'self' {styles}".rstrip())


def _defaults(path: str, scheme: str) -> list[tuple[bytes, bytes]]:
    """The security headers for a path, as raw pairs (lower-case names)."""
    pairs = [*HEADERS.items(), ("Content-Security-Policy", CSP)]
    if not path.startswith("/static/"):
        pairs.append(("Cache-Control", "no-store"))
    if scheme == "https":
        pairs.append(("Strict-Transport-Security", "max-age=31536000"))
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in pairs]


# The raw pairs by (is a static file, scheme): every response takes one of these few lists.
_RAW = {
    (static, scheme): _defaults("/static/" if static else "/", scheme)
    for static in (False, True)
    for scheme in ("http", "https")
}


def raw_headers(path: str, scheme: str) -> list[tuple[bytes, bytes]]:
    """The security headers of a response to `path`, as raw pairs (a shared list: read only)."""
    return _RAW[path.startswith("/static/"), "https" if scheme == "https" else "http"]


def apply_headers(headers: MutableHeaders, path: str, scheme: str) -> None:
    """Add the security headers a response does not set itself."""
    raw = headers.raw
    present = {name for name, _ in raw}
    raw.extend(pair for pair in raw_headers(path, scheme) if pair[0] not in present)


class SecurityHeaders:
    """ASGI middleware: security headers on every HTTP response.

    >>> app.add_middleware(SecurityHeaders)
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; add the headers to the response's start message."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        scheme: str = scope.get("scheme", "http")
        if path in DOCS_PATHS or path in STYLED_PATHS:
            await self._buffered(scope, receive, send, path, scheme)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                apply_headers(MutableHeaders(scope=message), path, scheme)
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _buffered(
        self, scope: Scope, receive: Receive, send: Send, path: str, scheme: str
    ) -> None:
        """Hold an HTML page until its body is known, to allow its inline blocks by hash."""
        start: Message | None = None
        chunks: list[bytes] = []

        async def collect(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = b"".join(chunks)
            headers = MutableHeaders(scope=start)
            if headers.get("content-type", "").startswith("text/html"):
                policy = docs_csp(body) if path in DOCS_PATHS else styled_csp(body)
                headers["Content-Security-Policy"] = policy
            apply_headers(headers, path, scheme)
            await send(start)
            await send({"type": "http.response.body", "body": body, "more_body": False})

        await self.app(scope, receive, collect)


def header_items(path: str, scheme: str = "http") -> Iterable[tuple[str, str]]:
    """The security headers as pairs, for responses built outside the middleware (500s)."""
    headers = MutableHeaders()
    apply_headers(headers, path, scheme)
    return headers.items()
