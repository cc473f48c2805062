"""What the administrators' pages read: people, keys, policy versions and dashboard figures,
each one set-based query; plus revoking an API key (audited), which no service offers yet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.engine import Connection

from credo.domain.errors import NotFoundError
from credo.services.register import Register
from credo.store import audit
from credo.store.db import is_sqlite
from credo.store.tables import (
    api_keys,
    cases,
    list_periods,
    policy_versions,
    records,
    standings,
    users,
)


def people(register: Register) -> list[dict[str, Any]]:
    """Every account (never its password hash)."""
    with register.read() as conn:
        rows = conn.execute(
            select(
                users.c.id,
                users.c.username,
                users.c.role,
                users.c.subject_id,
                users.c.authority_id,
                users.c.created_at,
                users.c.disabled,
            )
        ).all()
    return [dict(r._mapping) for r in rows]


def keys(register: Register) -> list[dict[str, Any]]:
    """Every API key by its public prefix (never its hash)."""
    with register.read() as conn:
        rows = conn.execute(
            select(
                api_keys.c.id,
                api_keys.c.authority_id,
                api_keys.c.prefix,
                api_keys.c.created_at,
                api_keys.c.revoked_at,
            )
        ).all()
    return [dict(r._mapping) for r in rows]


def revoke_key(register: Register, key_id: int, *, actor: str) -> str:
    """Revoke an API key from now on; returns its prefix. Audited as `key.revoked`."""
    now = register.clock.now()
    with register.write() as conn:
        row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
        if row is None:
            raise NotFoundError(f"API key {key_id} does not exist")
        if row.revoked_at is None:
            conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(revoked_at=now))
            audit.append(
                conn,
                actor=actor,
                action="key.revoked",
                at=now,
                payload={"authority": row.authority_id, "prefix": row.prefix},
            )
    return str(row.prefix)


def policy_versions_list(register: Register) -> list[dict[str, Any]]:
    """Every stored policy version (without its text)."""
    with register.read() as conn:
        rows = conn.execute(
            select(
                policy_versions.c.id,
                policy_versions.c.policy_id,
                policy_versions.c.version,
                policy_versions.c.digest,
                policy_versions.c.activated_at,
                policy_versions.c.activated_by,
                policy_versions.c.comment,
                policy_versions.c.active,
            )
        ).all()
    return [dict(r._mapping) for r in rows]


def policy_version(register: Register, version_id: int) -> dict[str, Any]:
    """One stored policy version with its text."""
    with register.read() as conn:
        row = conn.execute(
            select(policy_versions).where(policy_versions.c.id == version_id)
        ).first()
    if row is None:
        raise NotFoundError(f"policy version {version_id} does not exist")
    return dict(row._mapping)


@dataclass
class Dashboard:
    """The figures of the administrators' dashboard."""

    grades: list[tuple[str, int]] = field(default_factory=list)
    months: list[str] = field(default_factory=list)
    per_authority: dict[str, list[int]] = field(default_factory=dict)
    case_outcomes: list[tuple[str, str, int]] = field(default_factory=list)
    turnaround: list[tuple[str, int]] = field(default_factory=list)
    mean_days: float | None = None
    open_overdue: int = 0
    open_on_time: int = 0
    list_sizes: dict[str, list[int]] = field(default_factory=dict)


def _month(conn: Connection, column: Any) -> Any:
    if is_sqlite(conn):
        return func.strftime("%Y-%m", column)
    return func.to_char(column, "YYYY-MM")


def _months(today: date, count: int) -> list[str]:
    year, month = today.year, today.month
    labels = []
    for _ in range(count):
        labels.append(f"{year:04d}-{month:02d}")
        month -= 1
        if month == 0:
            year, month = year - 1, 12
    return labels[::-1]


def _list_sizes(conn: Connection, months: list[str], today: date) -> dict[str, list[int]]:
    """Members of each list on the first day of each month (today for the current one)."""
    p = list_periods.c
    sizes: dict[str, list[int]] = {}
    for i, label in enumerate(months):
        day = today if i == len(months) - 1 else date.fromisoformat(f"{label}-01")
        rows = conn.execute(
            select(p.list_id, func.count())
            .where(p.entered_on <= day, or_(p.left_on.is_(None), p.left_on > day))
            .group_by(p.list_id)
        )
        for list_id, n in rows:
            sizes.setdefault(list_id, [0] * len(months))[i] = int(n)
    return dict(sorted(sizes.items()))


def dashboard(
    register: Register, grade_order: list[str], *, by: str = "decided", months: int = 12
) -> Dashboard:
    """Grade distribution, records per authority per month, case outcomes and turnaround."""
    today = register.clock.today()
    result = Dashboard(months=_months(today, months))
    with register.read() as conn:
        counts: dict[str, int] = dict(
            conn.execute(select(standings.c.grade, func.count()).group_by(standings.c.grade)).all()
        )
        result.grades = [(g, int(counts.pop(g, 0))) for g in grade_order]
        result.grades += [(str(g), int(n)) for g, n in sorted(counts.items())]
        column = records.c.filed_at if by == "filed" else records.c.decided_on
        month = _month(conn, column)
        rows = conn.execute(
            select(records.c.authority_id, month.label("m"), func.count())
            .where(month >= result.months[0], records.c.version == 1)
            .group_by(records.c.authority_id, month)
        ).all()
        index = {m: i for i, m in enumerate(result.months)}
        for authority, label, n in rows:
            if label in index:
                series = result.per_authority.setdefault(authority, [0] * len(result.months))
                series[index[label]] += int(n)
        result.per_authority = dict(sorted(result.per_authority.items()))
        result.case_outcomes = [
            (kind, status, int(n))
            for kind, status, n in conn.execute(
                select(cases.c.kind, cases.c.status, func.count())
                .group_by(cases.c.kind, cases.c.status)
                .order_by(cases.c.kind, cases.c.status)
            ).all()
        ]
        decided = conn.execute(
            select(cases.c.filed_on, cases.c.due_on, cases.c.decided_on).where(
                cases.c.decided_on.is_not(None)
            )
        ).all()
        open_rows = conn.execute(select(cases.c.due_on).where(cases.c.status == "open")).all()
        result.list_sizes = _list_sizes(conn, result.months, today)
    buckets = {"before the deadline": 0, "up to a week late": 0, "more than a week late": 0}
    days = []
    for filed_on, due_on, decided_on in decided:
        days.append((decided_on - filed_on).days)
        late = (decided_on - due_on).days
        key = (
            "before the deadline"
            if late < 0
            else "up to a week late"
            if late < 7
            else "more than a week late"
        )
        buckets[key] += 1
    result.turnaround = list(buckets.items())
    result.mean_days = sum(days) / len(days) if days else None
    result.open_overdue = sum(1 for (due_on,) in open_rows if due_on <= today)
    result.open_on_time = len(open_rows) - result.open_overdue
    return result
