"""A subject's whole file as held (GDPR art. 15 style): details, every record version,
standing with explanation, list and measure history, notices, cases and every inquiry."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from credo.domain.scoring import compute_standing
from credo.services.cases import subject_cases
from credo.services.notices import notices_of
from credo.services.register import Register
from credo.store import audit, repository
from credo.store.tables import inquiries, list_periods, measure_periods


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def _history(conn: Any, subject_id: str) -> list[dict[str, Any]]:
    """Entries to and exits from lists and measures, from the periods every rescore keeps."""
    keyed: list[tuple[Any, int, int, int, dict[str, Any]]] = []
    for p in conn.execute(select(list_periods).where(list_periods.c.subject_id == subject_id)):
        keyed.append(
            (
                p.entered_on,
                0,
                p.id,
                0,
                {"at": _iso(p.entered_on), "list": p.list_id, "event": "entered"},
            )
        )
        if p.left_on is not None:
            keyed.append(
                (p.left_on, 0, p.id, 1, {"at": _iso(p.left_on), "list": p.list_id, "event": "left"})
            )
    for m in conn.execute(
        select(measure_periods).where(measure_periods.c.subject_id == subject_id)
    ):
        keyed.append(
            (
                m.started_on,
                1,
                m.id,
                0,
                {
                    "at": _iso(m.started_on),
                    "measure": m.measure_id,
                    "authority": m.authority_id,
                    "event": "started",
                },
            )
        )
        if m.ended_on is not None:
            keyed.append(
                (
                    m.ended_on,
                    1,
                    m.id,
                    1,
                    {
                        "at": _iso(m.ended_on),
                        "measure": m.measure_id,
                        "authority": m.authority_id,
                        "event": "ended",
                    },
                )
            )
    keyed.sort(key=lambda item: (str(item[0]), item[1], item[2], item[3]))
    return [item[-1] for item in keyed]


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
