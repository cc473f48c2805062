"""Department pages, part three: the measures to apply, and the changes since the last visit.

The current set comes from `measures(active=True)` a page at a time (the service's keyset
pages, in subject order); the changes from `changes(since=cursor)`, the same feed the API
gives a department's system.

Where "the last visit" is kept: a small table, `measure_feed_seen` (migration 0004), holds
per user and authority the feed cursor the user last marked as seen. Not the session: a
session ends after half an hour idle, so "since the last visit" would forget every change
at each login, and two people of one department would mark each other's changes. Nor is
the cursor moved by merely opening the page: a reload, or a look at the wrong moment,
would make changes vanish before anyone applied them. The page lists every change after
the stored cursor until the person says they have seen them ("Mark as seen"), which stores
the cursor of the last change shown (never a later one, so nothing that arrived in between
is skipped).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select, update

from credo.api.deps import RegisterDep
from credo.domain.errors import Problem, ValidationError
from credo.services.accounts import User
from credo.services.measures import changes, measures
from credo.services.register import Register
from credo.store.tables import measure_feed_seen
from credo.web.deps import AuthorityPage
from credo.web.pages_department import authority_of
from credo.web.render import page, paginate
from credo.web.session import verify_csrf

router = APIRouter(
    prefix="/department", dependencies=[Depends(verify_csrf)], include_in_schema=False
)
PER_PAGE = 20
FEED_LIMIT = 1000


def last_seen(register: Register, user_id: int, authority_id: str) -> tuple[int, datetime] | None:
    """The feed cursor this user last marked as seen for the authority, and when."""
    t = measure_feed_seen.c
    with register.read() as conn:
        row = conn.execute(
            select(t.cursor, t.seen_at).where(t.user_id == user_id, t.authority_id == authority_id)
        ).first()
    return None if row is None else (int(row.cursor), row.seen_at)


def mark_seen(register: Register, user_id: int, authority_id: str, cursor: int) -> int:
    """Store `cursor` as seen (never moving back); returns the stored cursor."""
    t = measure_feed_seen.c
    now = register.clock.now()
    with register.write() as conn:
        row = conn.execute(
            select(t.cursor).where(t.user_id == user_id, t.authority_id == authority_id)
        ).first()
        if row is None:
            conn.execute(
                measure_feed_seen.insert().values(
                    user_id=user_id, authority_id=authority_id, cursor=cursor, seen_at=now
                )
            )
            return cursor
        stored = max(int(row.cursor), cursor)
        conn.execute(
            update(measure_feed_seen)
            .where(t.user_id == user_id, t.authority_id == authority_id)
            .values(cursor=stored, seen_at=now)
        )
        return stored


def _measures_page(request: Request, user: User, register: Register) -> HTMLResponse:
    authority_id, policy = authority_of(user, register)
    after = request.query_params.get("after") or None
    try:
        current = measures(register, authority_id, active=True, after=after, limit=PER_PAGE)
    except ValidationError:
        current = measures(register, authority_id, active=True, limit=PER_PAGE)
        after = None
    seen = last_seen(register, user.id, authority_id)
    since = seen[0] if seen else 0
    feed = changes(register, authority_id, since=since, limit=FEED_LIMIT)
    events = feed["events"]
    table = paginate(
        request,
        events,
        sorts={
            "seq": lambda e: e["seq"],
            "on": lambda e: (e["on"], e["seq"]),
            "subject": lambda e: (e["subject_id"], e["seq"]),
            "measure": lambda e: (e["measure"], e["seq"]),
            "change": lambda e: (e["change"], e["seq"]),
        },
        default="seq",
        prefix="c_",
    )
    return page(
        request,
        "department/measures.html",
        {
            "authority_id": authority_id,
            "mine": [m for m in policy.measures if m.authority == authority_id],
            "texts": {m.id: m.text for m in policy.measures},
            "current": current,
            "first_page": after is None,
            "seen": seen,
            "feed": feed,
            "table": table,
            "counts": feed_summary(feed),
            "marked": request.query_params.get("seen") == "1",
        },
        user=user,
        title="Measures to apply",
    )


@router.get("/measures")
def measures_view(request: Request, user: AuthorityPage, register: RegisterDep) -> HTMLResponse:
    """The measures this department applies now, and what changed since it last looked."""
    return _measures_page(request, user, register)


@router.post("/measures/seen")
def measures_seen(
    user: AuthorityPage,
    register: RegisterDep,
    cursor: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """Mark the changes shown (up to `cursor`) as seen by this user."""
    authority_id, _ = authority_of(user, register)
    if not cursor.isdigit():
        raise ValidationError("no cursor", [Problem("cursor", "reload the page and try again")])
    mark_seen(register, user.id, authority_id, int(cursor))
    return RedirectResponse("/department/measures?seen=1", status_code=303)


def feed_summary(feed: dict[str, Any]) -> tuple[int, int]:
    """How many measures started and ended in a page of the feed."""
    events = feed["events"]
    started = sum(1 for e in events if e["change"] == "start")
    return started, len(events) - started
