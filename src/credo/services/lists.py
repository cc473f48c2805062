"""List membership for authorities: who is on a list on a day, and why (one inquiry each)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import or_, select

from credo.domain.errors import NotFoundError, PermissionDeniedError, Problem, ValidationError
from credo.domain.policy import GradeIn, Visible
from credo.services.register import Register
from credo.services.standing import Inquirer, check_purpose, log_inquiry
from credo.store.tables import list_periods, records


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

    Membership comes from the periods every rescore keeps, so it is known up to today. Each
    member shown is one inquiry; the causes (records, grade) only when the purpose sees the
    explanation.
    """
    today = register.clock.today()
    day = as_of or today
    if day > today:
        raise ValidationError(
            "list membership is known up to today",
            [Problem("as_of", f"{day} is in the future (today is {today})")],
        )
    with register.write() as conn:
        _, policy = register.active_policy(conn)
        check_purpose(policy, authority_id, purpose_id)
        sees = set(policy.purpose_by_id[purpose_id].sees)
        if Visible.LISTS not in sees:
            raise PermissionDeniedError(
                f"purpose {purpose_id!r} does not see lists",
                [Problem("purpose", f"{purpose_id!r} does not see lists")],
            )
        if list_id not in policy.list_by_id:
            raise NotFoundError(
                f"list {list_id!r} is not declared in the active policy",
                [Problem("list_id", f"unknown list {list_id!r}")],
            )
        p = list_periods.c
        query = (
            select(p.subject_id, p.entered_on, p.grade, p.records)
            .where(
                p.list_id == list_id,
                p.entered_on <= day,
                or_(p.left_on.is_(None), p.left_on > day),
            )
            .order_by(p.subject_id)
            .limit(limit + 1)
        )
        if after is not None:
            query = query.where(p.subject_id > after)
        rows = list(conn.execute(query))
        more = len(rows) > limit
        rows = rows[:limit]
        rule = policy.list_by_id[list_id]
        graded = {g for cond in rule.when if isinstance(cond, GradeIn) for g in cond.grade_in}
        who = Inquirer(authority_id, "api")
        members = []
        for row in rows:
            member: dict[str, Any] = {
                "subject_id": row.subject_id,
                "since": row.entered_on.isoformat()
                if isinstance(row.entered_on, date)
                else str(row.entered_on),
            }
            if Visible.EXPLANATION in sees:
                member["causes"] = _causes(conn, row.records, row.grade, graded)
            members.append(member)
            log_inquiry(conn, register, who, purpose_id, row.subject_id, day)
    return MembersPage(list_id, day, members, rows[-1].subject_id if more else None)


def _causes(conn: Any, record_ids: str, grade: str, graded: set[str]) -> list[dict[str, Any]]:
    ids = [int(i) for i in record_ids.split(",") if i]
    causes: list[dict[str, Any]] = []
    if ids:
        found = conn.execute(
            select(records.c.authority_id, records.c.reference, records.c.category)
            .where(records.c.id.in_(ids))
            .order_by(records.c.decided_on, records.c.authority_id, records.c.reference)
        )
        causes += [
            {
                "record": {
                    "authority": r.authority_id,
                    "reference": r.reference,
                    "category": r.category,
                }
            }
            for r in found
        ]
    if grade in graded:
        causes.append({"grade": grade})
    return causes
