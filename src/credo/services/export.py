"""A subject's whole file as held (GDPR art. 15 style): details, every record version,
standing with explanation, list and measure history, notices, cases and every inquiry."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from credo.domain.scoring import compute_standing
from credo.services.cases import subject_cases
from credo.services.notices import _split, notices_of
from credo.services.register import Register
from credo.store import audit, repository
from credo.store.tables import inquiries, notices


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def _history(conn: Any, subject_id: str) -> list[dict[str, Any]]:
    """Entries to and exits from lists and measures, from the notices of every change."""
    events = []
    for row in conn.execute(
        select(notices.c.before, notices.c.after, notices.c.created_at)
        .where(notices.c.subject_id == subject_id, notices.c.kind == "standing.changed")
        .order_by(notices.c.id)
    ):
        old_lists, old_measures = _split(row.before)
        new_lists, new_measures = _split(row.after)
        at = _iso(row.created_at)
        events += [
            {"at": at, "list": x, "event": "entered"} for x in new_lists if x not in old_lists
        ]
        events += [{"at": at, "list": x, "event": "left"} for x in old_lists if x not in new_lists]
        events += [
            {"at": at, "measure": x, "event": "started"}
            for x in new_measures
            if x not in old_measures
        ]
        events += [
            {"at": at, "measure": x, "event": "ended"}
            for x in old_measures
            if x not in new_measures
        ]
    return events


def subject_file(register: Register, subject_id: str, *, actor: str) -> dict[str, Any]:
    """Everything credo holds on one subject; reading it is itself audited."""
    today = register.clock.today()
    with register.write() as conn:
        subject = repository.subject_row(conn, subject_id)
        _, policy = register.active_policy(conn)
        rows = repository.subject_records(conn, subject_id)
        standing = compute_standing(
            policy, subject_id, repository.record_facts(conn, subject_id), today
        )
        looks = conn.execute(
            select(inquiries)
            .where(inquiries.c.subject_id == subject_id)
            .order_by(inquiries.c.at, inquiries.c.id)
        )
        data = {
            "subject": {
                "subject_id": subject.id,
                "name": subject.name,
                "kind": subject.kind,
                "organisation": subject.organisation,
                "position": subject.position,
                "email": subject.email,
                "registered_at": _iso(subject.created_at),
            },
            "as_of": today.isoformat(),
            "policy": policy.label,
            "standing": standing.to_json(),
            "records": [
                {
                    "id": r.id,
                    "authority": r.authority_id,
                    "reference": r.reference,
                    "version": r.version,
                    "category": r.category,
                    "category_name": policy.category_by_id[r.category].name
                    if r.category in policy.category_by_id
                    else None,
                    "decided_on": _iso(r.decided_on),
                    "occurred_on": _iso(r.occurred_on),
                    "legal_basis": r.legal_basis,
                    "summary": r.summary,
                    "amount": None if r.amount is None else str(r.amount),
                    "evidence_uri": r.evidence_uri,
                    "filed_at": _iso(r.filed_at),
                    "effective_until": _iso(r.ends_on),
                    "state": "revoked"
                    if r.revoked
                    else "superseded"
                    if r.counts_until is not None
                    else "repaired"
                    if r.repaired_on is not None
                    else "current",
                    "counts_from": _iso(r.counts_from),
                    "superseded_on": _iso(r.counts_until),
                    "repaired_on": _iso(r.repaired_on),
                }
                for r in rows
            ],
            "history": _history(conn, subject_id),
            "cases": subject_cases(conn, subject_id, today),
            "notices": notices_of(conn, subject_id, policy),
            "inquiries": [
                {
                    "authority": q.authority_id,
                    "purpose": q.purpose,
                    "at": _iso(q.at),
                    "as_of": _iso(q.as_of),
                    "channel": q.channel,
                }
                for q in looks
            ],
        }
        audit.append(
            conn,
            actor=actor,
            action="file.exported",
            at=register.clock.now(),
            subject_id=subject_id,
            payload={"records": len(rows)},
        )
    return data


export_file = subject_file
