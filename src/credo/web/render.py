"""Rendering pages: the Jinja2 environment, the page helper, form errors and table paging.

Every table on every page goes through `paginate`: a sort key from an allow-list
(`?sort=due_on&dir=desc`) and pages of `PER_PAGE` rows (`?page=2`), with links that keep
the other query parameters.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from credo.domain.errors import CredoError
from credo.services.accounts import User
from credo.web.session import request_csrf

HERE = Path(__file__).parent
PER_PAGE = 20
env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html", "svg"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def when(value: Any) -> str:
    """A stored instant as 'YYYY-MM-DD HH:MM' UTC (dates and text pass through)."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return str(value.strftime("%Y-%m-%d %H:%M UTC"))
    if isinstance(value, str) and len(value) > 16 and value[10] == "T":
        return when(datetime.fromisoformat(value))
    return "" if value is None else str(value)


_PERIOD = re.compile(r"^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)D)?$")


def duration(value: Any) -> str:
    """An ISO-8601 duration in words: 'P2Y6M' -> '2 years 6 months'."""
    found = _PERIOD.match(str(value))
    if not found:
        return str(value)
    parts = [
        f"{n} {unit}{'s' if int(n) != 1 else ''}"
        for n, unit in zip(found.groups(), ("year", "month", "day"), strict=True)
        if n and int(n)
    ]
    return " ".join(parts) or "0 days"


env.filters["when"] = when
env.filters["duration"] = duration

NAV: dict[str, list[tuple[str, str]]] = {
    "subject": [
        ("/me", "My standing"),
        ("/me/records", "Records"),
        ("/me/cases", "Objections & requests"),
        ("/me/notices", "Notices"),
        ("/me/inquiries", "Who looked"),
    ],
    "reviewer": [("/review", "Queue")],
    "admin": [
        ("/admin", "Dashboard"),
        ("/admin/people", "People"),
        ("/admin/keys", "API keys"),
        ("/admin/policies", "Policies"),
        ("/admin/audit", "Audit"),
    ],
    "authority": [
        ("/department", "Department"),
        ("/department/records/new", "File a record"),
        ("/department/imports", "Upload"),
        ("/department/lookup", "Look up"),
        ("/department/promotion", "Promotion review"),
        ("/department/measures", "Measures"),
    ],
}


def page(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    user: User | None = None,
    status: int = 200,
    title: str = "",
) -> HTMLResponse:
    """Render one page of the base layout, with the navigation of the user's role."""
    html = env.get_template(template).render(
        request=request,
        user=user,
        nav=NAV.get(user.role, []) if user else [],
        path=request.url.path,
        csrf_token=request_csrf(request),
        title=title,
        **(context or {}),
    )
    return HTMLResponse(html, status_code=status)


def field_errors(exc: CredoError) -> dict[str, str]:
    """A refusal's problems by form field (the last part of each location)."""
    errors: dict[str, str] = {}
    for problem in exc.problems:
        name = problem.location.split(".")[-1] if problem.location else "form"
        errors.setdefault(name, problem.message)
    if not errors:
        errors["form"] = exc.message
    return errors


@dataclass(frozen=True)
class Page:
    """One page of a sorted table and what its links need."""

    rows: list[Any]
    number: int
    pages: int
    total: int
    sort: str
    direction: str
    base: str
    params: dict[str, str]
    prefix: str = ""

    def link(self, **changes: Any) -> str:
        """The URL of this table with some of its query parameters changed."""
        params = {**self.params, **{f"{self.prefix}{k}": str(v) for k, v in changes.items()}}
        return f"{self.base}?{urlencode(params)}"

    def sort_link(self, key: str) -> str:
        """The URL sorting by `key` (reversing the direction when it is the current key)."""
        direction = "desc" if key == self.sort and self.direction == "asc" else "asc"
        return self.link(sort=key, dir=direction, page=1)

    def aria_sort(self, key: str) -> str:
        """The aria-sort value of a column header."""
        if key != self.sort:
            return "none"
        return "ascending" if self.direction == "asc" else "descending"


def _key(value: Any) -> tuple[int, Any]:
    """Sort None last and mixed types stably."""
    if value is None:
        return (1, "")
    if isinstance(value, int | float):
        return (0, value)
    return (0, str(value))


def paginate(
    request: Request,
    rows: Sequence[Any],
    *,
    sorts: Mapping[str, Callable[[Any], Any]],
    default: str,
    direction: str = "asc",
    per_page: int = PER_PAGE,
    prefix: str = "",
) -> Page:
    """Sort `rows` by the requested allowed key and cut out the requested page.

    `prefix` names the query parameters when one page holds several tables.
    """
    query = request.query_params
    sort = query.get(f"{prefix}sort", default)
    if sort not in sorts:
        sort = default
    wanted = query.get(f"{prefix}dir", direction)
    wanted = wanted if wanted in ("asc", "desc") else direction
    ordered = sorted(rows, key=lambda r: _key(sorts[sort](r)), reverse=wanted == "desc")
    total = len(ordered)
    pages = max(1, -(-total // per_page))
    try:
        number = min(max(1, int(query.get(f"{prefix}page", "1"))), pages)
    except ValueError:
        number = 1
    params = {k: v for k, v in query.items()}
    params.update({f"{prefix}sort": sort, f"{prefix}dir": wanted})
    start = (number - 1) * per_page
    return Page(
        rows=list(ordered[start : start + per_page]),
        number=number,
        pages=pages,
        total=total,
        sort=sort,
        direction=wanted,
        base=request.url.path,
        params=params,
        prefix=prefix,
    )
