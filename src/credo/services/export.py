"""A subject's whole file, as held: details, every record version, standing, inquiries."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from credo.domain.scoring import compute_standing
from credo.services.register import Register
from credo.store import audit, repository
from credo.store.tables import inquiries


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def export_file(register: Register, subject_id: str, *, actor: str) -> dict[str, Any]:
    """Everything credo holds on one subject (the export itself is audited)."""
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
                    "revoked": bool(r.revoked),
                }
                for r in rows
            ],
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
