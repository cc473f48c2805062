"""List membership for authorities: who is on a list on a day, and why (one inquiry each)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import bindparam, select, text

from credo.domain.errors import NotFoundError, PermissionDeniedError, Problem
from credo.domain.policy import AnyOf, GradeIn, Policy, Visible
from credo.services.inquiries import Inquirer, log_inquiries
from credo.services.register import Register
from credo.services.standing import check_purpose
from credo.store.db import dateparam
from credo.store.rescore import RescoreSql
from credo.store.tables import list_periods, standings


@dataclass(frozen=True)
class MembersPage:
    """One page of a list's members on a day; `next_after` continues it (None: the end)."""

    list_id: str
    as_of: date
    members: list[dict[str, Any]]
    next_after: str | None

    def to_json(self) -> dict[str, Any]:
        """The API shape."""
        return {
            "list": self.list_id,
            "as_of": self.as_of.isoformat(),
            "members": self.members,
            "next_after": self.next_after,
        }


def list_members(
    register: Register,
    *,
    authority_id: str,
    list_id: str,
    purpose_id: str,
    as_of: date | None = None,
    after: str | None = None,
    limit: int = 100,
) -> MembersPage:
    """The members of a list on a day, ordered by subject id, for a purpose that sees lists.

    Today's members are read from the periods every rescore keeps; another day's are
    computed set-based from the records by the scoring SQL (DESIGN 5, as a standing for that
    day would be). Each member shown is one inquiry; the causes (the effective records of
    the list's `any_of` categories, or the grade) only when the purpose sees the explanation.
    """
    today = register.clock.today()
    day = as_of or today
    with register.write() as conn:
        _, policy = register.active_policy(conn)
        check_purpose(policy, authority_id, purpose_id)
        sees = set(policy.purpose_by_id[purpose_id].sees)
        if Visible.LISTS not in sees:
            raise PermissionDeniedError(
                f"purpose {purpose_id!r} does not see lists",
                [Problem("purpose", f"{purpose_id!r} does not see lists")],
            )
        rule = policy.list_by_id.get(list_id)
        if rule is None:
            raise NotFoundError(
                f"list {list_id!r} is not declared in the active policy",
                [Problem("list_id", f"unknown list {list_id!r}")],
            )
        rows = (
            _current(conn, list_id, after, limit)
            if day == today
            else _computed(conn, policy, list_id, day, after, limit)
        )
        more = len(rows) > limit
        rows = rows[:limit]
        graded = {g for cond in rule.when if isinstance(cond, GradeIn) for g in cond.grade_in}
        categories = sorted(
            {c for cond in rule.when if isinstance(cond, AnyOf) for c in cond.any_of}
        )
        causes = (
            _causes(conn, policy, [r.subject_id for r in rows], categories, day)
            if Visible.EXPLANATION in sees
            else {}
        )
        who = Inquirer(authority_id, "api")
        members = []
        for row in rows:
            member: dict[str, Any] = {"subject_id": row.subject_id, "since": _iso(row.since)}
            if Visible.EXPLANATION in sees:
                member["causes"] = causes.get(row.subject_id, []) + (
                    [{"grade": row.grade}] if row.grade in graded else []
                )
            members.append(member)
        log_inquiries(conn, register, who, purpose_id, [row.subject_id for row in rows], day)
    return MembersPage(list_id, day, members, rows[-1].subject_id if more else None)


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if isinstance(value, date) else str(value)


def _current(conn: Any, list_id: str, after: str | None, limit: int) -> list[Any]:
    """Today's members: the open periods, with the current grade."""
    p = list_periods.c
    query = (
        select(p.subject_id, p.entered_on.label("since"), standings.c.grade)
        .join(standings, standings.c.subject_id == p.subject_id)
        .where(p.list_id == list_id, p.left_on.is_(None))
        .order_by(p.subject_id)
        .limit(limit + 1)
    )
    if after is not None:
        query = query.where(p.subject_id > after)
    return list(conn.execute(query))


def _computed(
    conn: Any, policy: Policy, list_id: str, day: date, after: str | None, limit: int
) -> list[Any]:
    """Another day's members, scored from the records; `since` from the kept periods."""
    scored = RescoreSql(policy).select(dialect=conn.dialect.name)
    page = "AND m.subject_id > :after " if after is not None else ""
    sql = (
        f"SELECT m.subject_id, m.grade, (SELECT MAX(lp.entered_on) FROM list_periods lp "
        "WHERE lp.subject_id = m.subject_id AND lp.list_id = :list AND lp.entered_on <= :t "
        "AND (lp.left_on IS NULL OR lp.left_on > :t)) AS since "
        f"FROM ({scored}) m WHERE ',' || m.lists || ',' LIKE :pattern ESCAPE '!' {page}"
        "ORDER BY m.subject_id LIMIT :limit"
    )
    params: dict[str, Any] = {
        "t": dateparam(conn, day),
        "list": list_id,
        "pattern": "%," + list_id.replace("!", "!!").replace("_", "!_").replace("%", "!%") + ",%",
        "limit": limit + 1,
    }
    if after is not None:
        params["after"] = after
    return list(conn.execute(text(sql), params))


def _causes(
    conn: Any, policy: Policy, subject_ids: list[str], categories: list[str], day: date
) -> dict[str, list[dict[str, Any]]]:
    """The effective records of the list's `any_of` categories on `day`, per subject."""
    if not subject_ids or not categories:
        return {}
    found: dict[str, list[dict[str, Any]]] = {}
    query = (
        f"SELECT r.subject_id, r.authority_id, r.reference, r.category FROM records r "
        f"WHERE r.subject_id IN :ids AND r.category IN :cats AND "
        f"{RescoreSql(policy).effective()} "
        "ORDER BY r.subject_id, r.decided_on, r.authority_id, r.reference"
    )
    statement = text(query).bindparams(
        bindparam("ids", expanding=True), bindparam("cats", expanding=True)
    )
    params = {"ids": subject_ids, "cats": categories, "t": dateparam(conn, day)}
    for r in conn.execute(statement, params):
        found.setdefault(r.subject_id, []).append(
            {
                "record": {
                    "authority": r.authority_id,
                    "reference": r.reference,
                    "category": r.category,
                }
            }
        )
    return found
