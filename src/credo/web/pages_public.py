"""The public register as pages: search, one page per list, one page per published record.

No login. Every page is rate limited per client address by the same limit as the public
API (`app.state.public_rate_limit`), and shows only what `credo.services.public` publishes
(DESIGN 5, rule 7): a record's subject name, authority, category, decision date, legal basis
and reference; nothing else. A record that is not published today answers 404, the same
as one that does not exist, so the page says nothing about unpublished records.

Tables page and sort in the database through the service's `limit`/`offset` and `sort`
(20 rows, `?page=N&sort=decided_on&dir=desc`), as a national list needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import text

from credo.api.deps import RegisterDep
from credo.domain.errors import NotFoundError, ValidationError
from credo.services.public import SORTS, public_list, published_condition, search
from credo.store.db import dateparam
from credo.web.deps import MaybeUser
from credo.web.render import page

PER_PAGE = 20


def _limited(request: Request) -> None:
    """Count the request against the client's public rate limit (429 past it)."""
    request.app.state.public_rate_limit(request)


router = APIRouter(prefix="/register", dependencies=[Depends(_limited)], include_in_schema=False)


@dataclass(frozen=True)
class Window:
    """One page of a table paged and sorted by the service: rows, neighbours, sort links."""

    rows: list[dict[str, Any]]
    number: int
    previous: str | None
    next: str | None
    sort: str
    direction: str
    path: str
    params: dict[str, str]

    def sort_link(self, key: str) -> str:
        """The link that sorts by `key` (the other direction when it already does)."""
        flip = "desc" if self.sort == key and self.direction == "asc" else "asc"
        params = {**self.params, "sort": key, "dir": flip, "page": "1"}
        return f"{self.path}?{urlencode(params)}"

    def aria_sort(self, key: str) -> str:
        """`ascending`, `descending` or `none`, for the column header."""
        if self.sort != key:
            return "none"
        return "ascending" if self.direction == "asc" else "descending"


def _window(request: Request, fetch: Any) -> Window:
    """Ask `fetch(limit, offset, sort, direction)` for one page (and one row more, to know
    if there is a next); unknown sort keys fall back to the name."""
    try:
        number = max(1, int(request.query_params.get("page", "1")))
    except ValueError:
        number = 1
    number = min(number, 50_000)  # the service's offset limit
    sort = request.query_params.get("sort", "name")
    sort = sort if sort in SORTS else "name"
    direction = "desc" if request.query_params.get("dir") == "desc" else "asc"
    found = fetch(PER_PAGE + 1, (number - 1) * PER_PAGE, sort, direction)
    rows = found["entries"]
    params = dict(request.query_params)

    def link(n: int) -> str:
        return f"{request.url.path}?{urlencode({**params, 'page': str(n)})}"

    return Window(
        rows=rows[:PER_PAGE],
        number=number,
        previous=link(number - 1) if number > 1 else None,
        next=link(number + 1) if len(rows) > PER_PAGE else None,
        sort=sort,
        direction=direction,
        path=request.url.path,
        params=params,
    )


def _policy(register: Any) -> Any:
    with register.read() as conn:
        return register.active_policy(conn)[1]


@router.get("")
def register_home(request: Request, user: MaybeUser, register: RegisterDep) -> HTMLResponse:
    """Search by name or reference, and the lists of the policy."""
    policy = _policy(register)
    q = request.query_params.get("q", "").strip()
    errors: dict[str, str] = {}
    results = None
    if "q" in request.query_params:
        try:
            results = _window(
                request,
                lambda limit, offset, sort, direction: search(
                    register, q, limit=limit, offset=offset, sort=sort, direction=direction
                ),
            )
        except ValidationError:
            errors["q"] = "Type 2 to 100 characters: part of a name, or a whole reference."
    return page(
        request,
        "public/index.html",
        {
            "q": q,
            "errors": errors,
            "results": results,
            "lists": list(policy.lists),
            "delay": str(policy.policy.publication_delay),
            "today": register.clock.today(),
        },
        user=user,
        title="Public register",
        status=422 if errors else 200,
    )


@router.get("/lists/{list_id}")
def register_list(
    list_id: str, request: Request, user: MaybeUser, register: RegisterDep
) -> HTMLResponse:
    """A list's published entries (its members' published records of its categories)."""
    found: dict[str, Any] = {}

    def fetch(limit: int, offset: int, sort: str, direction: str) -> dict[str, Any]:
        found.update(
            public_list(
                register, list_id, limit=limit, offset=offset, sort=sort, direction=direction
            )
        )
        return found

    window = _window(request, fetch)
    return page(
        request,
        "public/list.html",
        {"list": found["list"], "as_of": found["as_of"], "window": window},
        user=user,
        title=found["list"]["name"],
    )


_ENTRY = (
    "SELECT s.name, r.authority_id, r.category, r.decided_on, r.legal_basis, r.reference "
    "FROM records r JOIN subjects s ON s.id = r.subject_id WHERE "
)


def published_record(register: Any, authority_id: str, reference: str) -> dict[str, Any]:
    """One record as the public register shows it today, or NotFoundError."""
    today = register.clock.today()
    with register.read() as conn:
        _, policy = register.active_policy(conn)
        sql = (
            _ENTRY
            + published_condition(policy, conn.dialect.name)
            + " AND r.authority_id = :authority AND r.reference = :reference "
            "ORDER BY r.version DESC"
        )
        params = {"t": dateparam(conn, today), "authority": authority_id, "reference": reference}
        row = conn.execute(text(sql), params).first()
    if row is None:
        raise NotFoundError("no published record has this reference")
    authority = policy.authority_by_id.get(row.authority_id)
    category = policy.category_by_id.get(row.category)
    decided = row.decided_on
    return {
        "name": row.name,
        "authority": {"id": row.authority_id, "name": authority.name if authority else None},
        "category": {"id": row.category, "name": category.name if category else None},
        "decided_on": decided.isoformat() if isinstance(decided, date) else str(decided),
        "legal_basis": row.legal_basis,
        "reference": row.reference,
        "as_of": today.isoformat(),
    }


@router.get("/records/{authority_id}/{reference:path}")
def register_record(
    authority_id: str, reference: str, request: Request, user: MaybeUser, register: RegisterDep
) -> HTMLResponse:
    """One published record: name, authority, category, decision date, legal basis, reference."""
    entry = published_record(register, authority_id, reference)
    return page(
        request,
        "public/record.html",
        {"entry": entry},
        user=user,
        title=f"{entry['name']}: {entry['reference']}",
    )
