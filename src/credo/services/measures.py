"""The measures each authority must apply: the current set, and a feed of starts and ends.

A department's system reads every page of `measures(active=True)` once, keeps the `cursor`
the first page returned, then polls `changes(since=cursor)`, applying each event in order
(start adds the pair, end removes it). Replaying from any cursor converges on the state a
fresh full read returns: events are committed in `seq` order (see store.memberships).
"""

from __future__ import annotations

import base64
import binascii
from datetime import date
from typing import Any

from sqlalchemy import and_, func, or_, select, tuple_

from credo.domain.errors import Problem, ValidationError
from credo.services.register import Register
from credo.store.tables import measure_events, measure_periods


def _day(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if isinstance(value, date) else str(value)


def _token(subject_id: str, measure_id: str, period_id: int) -> str:
    raw = f"{subject_id}\x1f{measure_id}\x1f{period_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _untoken(token: str) -> tuple[str, str, int]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        subject_id, measure_id, period_id = raw.split("\x1f")
        return subject_id, measure_id, int(period_id)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValidationError(
            "the page token is not one this register gave out",
            [Problem("after", "invalid page token")],
        ) from None


def measures(
    register: Register,
    authority_id: str,
    *,
    active: bool = True,
    after: str | None = None,
    limit: int = 100,
) -> dict[str, Any]:
    """The authority's measures (current ones, or all periods), ordered by subject."""
    m = measure_periods.c
    query = (
        select(m.id, m.subject_id, m.measure_id, m.started_on, m.ended_on)
        .where(m.authority_id == authority_id)
        .order_by(m.subject_id, m.measure_id, m.id)
        .limit(limit + 1)
    )
    if active:
        query = query.where(m.ended_on.is_(None))
    if after is not None:
        subject_id, measure_id, period_id = _untoken(after)
        query = query.where(
            or_(
                m.subject_id > subject_id,
                and_(
                    m.subject_id == subject_id,
                    tuple_(m.measure_id, m.id) > tuple_(measure_id, period_id),
                ),
            )
        )
    with register.read() as conn:
        cursor = conn.execute(select(func.coalesce(func.max(measure_events.c.seq), 0))).scalar()
        rows = list(conn.execute(query))
    more = len(rows) > limit
    rows = rows[:limit]
    items = [
        {
            "subject_id": r.subject_id,
            "measure": r.measure_id,
            "started_on": _day(r.started_on),
            "ended_on": _day(r.ended_on),
        }
        for r in rows
    ]
    last = rows[-1] if more else None
    return {
        "authority": authority_id,
        "items": items,
        "next_after": _token(last.subject_id, last.measure_id, last.id) if last else None,
        "cursor": int(cursor or 0),
    }


def changes(
    register: Register, authority_id: str, *, since: int = 0, limit: int = 1000
) -> dict[str, Any]:
    """The authority's measure starts and ends after `since`, in commit order.

    `cursor` is the seq of the last event returned (or `since` when there is none): pass it
    back as `since`; `more` says whether another call would return events at once.
    """
    if since < 0:
        raise ValidationError("since must not be negative", [Problem("since", "negative")])
    e = measure_events.c
    with register.read() as conn:
        rows = list(
            conn.execute(
                select(e.seq, e.subject_id, e.measure_id, e.change, e.on_day)
                .where(e.authority_id == authority_id, e.seq > since)
                .order_by(e.seq)
                .limit(limit + 1)
            )
        )
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "authority": authority_id,
        "events": [
            {
                "seq": r.seq,
                "change": r.change,
                "subject_id": r.subject_id,
                "measure": r.measure_id,
                "on": _day(r.on_day),
            }
            for r in rows
        ],
        "cursor": rows[-1].seq if rows else since,
        "more": more,
    }
