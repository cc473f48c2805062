"""What the person on file sees, read for pages: standing now and over time, records with
their versions, inquiries. Reads only; exporting the whole file stays `subject_file`
(which audits the export).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from credo.domain.durations import Duration
from credo.domain.policy import Policy
from credo.domain.scoring import Standing, compute_standing
from credo.services.register import Register
from credo.store import repository
from credo.store.tables import inquiries, records

PAST_YEARS = 3
NEXT_YEARS = 2


@dataclass(frozen=True)
class Overview:
    """A subject's dashboard: who they are, their standing and its course over time."""

    subject: Any
    policy: Policy
    standing: Standing
    timeline: list[tuple[date, int]]
    today: date


def monthly_days(
    today: date, past_years: int = PAST_YEARS, next_years: int = NEXT_YEARS
) -> list[date]:
    """The first of every month from `past_years` before today to `next_years` after, and today."""
    start = date(today.year - past_years, today.month, 1)
    months = (past_years + next_years) * 12
    days = [Duration(months=m, days=0).add_to(start) for m in range(months + 1)]
    return sorted({*days, today})


def score_timeline(
    policy: Policy, subject_id: str, facts: list[Any], days: list[date]
) -> list[tuple[date, int]]:
    """The score on each day, by the pure scorer over the records as held today.

    Future days assume that nothing new is filed and that open objections stay open.
    """
    return [(day, compute_standing(policy, subject_id, facts, day).score) for day in days]


def overview(register: Register, subject_id: str) -> Overview:
    """The dashboard of one subject."""
    today = register.clock.today()
    with register.read() as conn:
        subject = repository.subject_row(conn, subject_id)
        _, policy = register.active_policy(conn)
        facts = repository.record_facts(conn, subject_id)
    standing = compute_standing(policy, subject_id, facts, today)
    timeline = score_timeline(policy, subject_id, facts, monthly_days(today))
    return Overview(subject, policy, standing, timeline, today)


def record_state(row: Any) -> str:
    """A record version's state, as the exported file names it."""
    if row.revoked:
        return "revoked"
    if row.counts_until is not None:
        return "superseded"
    if row.repaired_on is not None:
        return "repaired"
    return "current"


def record_view(row: Any, policy: Policy, today: date) -> dict[str, Any]:
    """One record version for a page."""
    category = policy.category_by_id.get(row.category)
    state = record_state(row)
    return {
        "id": row.id,
        "authority": row.authority_id,
        "reference": row.reference,
        "version": row.version,
        "category": row.category,
        "category_name": category.name if category else row.category,
        "points": category.points if category else None,
        "repairable": bool(category and category.repairable),
        "decided_on": row.decided_on,
        "occurred_on": row.occurred_on,
        "legal_basis": row.legal_basis,
        "summary": row.summary,
        "amount": row.amount,
        "evidence_uri": row.evidence_uri,
        "filed_at": row.filed_at,
        "ends_on": row.ends_on,
        "state": state,
        "counting": state in ("current", "repaired") and row.ends_on > today,
        "current": state in ("current", "repaired"),
    }


def subject_records(
    conn: Connection, policy: Policy, subject_id: str, today: date
) -> list[dict[str, Any]]:
    """Every version of every record of the subject."""
    return [record_view(r, policy, today) for r in repository.subject_records(conn, subject_id)]


def record_versions(
    conn: Connection, policy: Policy, record: Any, today: date
) -> list[dict[str, Any]]:
    """Every version of one record (same authority and reference), oldest first."""
    rows = conn.execute(
        select(records)
        .where(
            records.c.authority_id == record.authority_id,
            records.c.reference == record.reference,
            records.c.subject_id == record.subject_id,
        )
        .order_by(records.c.version)
    ).all()
    return [record_view(r, policy, today) for r in rows]


def record_row(conn: Connection, record_id: int, subject_id: str | None = None) -> Any:
    """A record row (of this subject when given), or None."""
    row = conn.execute(select(records).where(records.c.id == record_id)).first()
    if row is None or (subject_id is not None and row.subject_id != subject_id):
        return None
    return row


def subject_inquiries(conn: Connection, policy: Policy, subject_id: str) -> list[dict[str, Any]]:
    """Every logged look at the subject's standing, with the purpose's legal basis."""
    rows = conn.execute(
        select(inquiries).where(inquiries.c.subject_id == subject_id).order_by(inquiries.c.id)
    ).all()
    result = []
    for q in rows:
        purpose = policy.purpose_by_id.get(q.purpose)
        authority = policy.authority_by_id.get(q.authority_id)
        result.append(
            {
                "at": q.at,
                "authority": q.authority_id,
                "authority_name": authority.name if authority else q.authority_id,
                "purpose": q.purpose,
                "legal_basis": purpose.legal_basis if purpose else "",
                "sees": ", ".join(v.value for v in purpose.sees) if purpose else "",
                "as_of": q.as_of,
                "channel": q.channel,
            }
        )
    return result
