"""Objections, repair requests and requests for human review, and their decisions.

Each is one transaction that writes its audit entry, rescores the subject and notifies them.
Deadlines: a case is due `objection_period` after it is filed; an overdue objection suspends
its record whatever the category (DESIGN 5.1) until it is decided.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection

from credo.domain.errors import (
    ConflictError,
    NotFoundError,
    Problem,
    ValidationError,
)
from credo.domain.filing import RECORD_FIELDS, record_hash, validate_record
from credo.domain.policy import Policy
from credo.services.filing import lock_subject, refresh_subject
from credo.services.notices import notify
from credo.services.register import Register
from credo.store import audit, repository
from credo.store.rescore import lock_register
from credo.store.tables import attachments, cases, records

MAX_ATTACHMENT = 5 * 1024 * 1024
MAX_TEXT = 5000
CORRECTABLE = (
    "category",
    "decided_on",
    "occurred_on",
    "legal_basis",
    "summary",
    "amount",
    "evidence_uri",
)


class CaseKind(StrEnum):
    """The three kinds of case a subject can open."""

    OBJECTION = "objection"
    REPAIR = "repair"
    REVIEW = "review"


class Outcome(StrEnum):
    """How a reviewer decides."""

    REJECT = "reject"  # objection: the record stands
    CORRECT = "correct"  # objection or review: a new version of the record
    REVOKE = "revoke"  # objection or review: the record never counted
    APPROVE = "approve"  # repair
    REFUSE = "refuse"  # repair
    CONFIRM = "confirm"  # review: the automated outcome stands


ALLOWED = {
    CaseKind.OBJECTION: {Outcome.REJECT, Outcome.CORRECT, Outcome.REVOKE},
    CaseKind.REPAIR: {Outcome.APPROVE, Outcome.REFUSE},
    CaseKind.REVIEW: {Outcome.CONFIRM, Outcome.CORRECT, Outcome.REVOKE},
}
STATUS = {
    Outcome.REJECT: "rejected",
    Outcome.CORRECT: "corrected",
    Outcome.REVOKE: "revoked",
    Outcome.APPROVE: "approved",
    Outcome.REFUSE: "refused",
    Outcome.CONFIRM: "confirmed",
}


@dataclass(frozen=True)
class Attachment:
    """A file a subject sends with a case."""

    filename: str
    content_type: str
    content: bytes


def _text(value: str, field: str) -> str:
    text = (value or "").strip()
    if not text:
        raise ValidationError(f"{field} are required", [Problem(field, "must not be empty")])
    if len(text) > MAX_TEXT:
        raise ValidationError(
            f"{field} are too long", [Problem(field, f"at most {MAX_TEXT} characters")]
        )
    return text


def _store_attachment(
    conn: Connection, subject_id: str, attachment: Attachment | None, now: datetime
) -> int | None:
    if attachment is None or not attachment.content:
        return None
    if len(attachment.content) > MAX_ATTACHMENT:
        raise ValidationError(
            "the attachment is too large",
            [Problem("attachment", f"{len(attachment.content)} bytes; the limit is 5 MB")],
        )
    result = conn.execute(
        insert(attachments).values(
            subject_id=subject_id,
            filename=(attachment.filename or "attachment")[:200],
            content_type=(attachment.content_type or "application/octet-stream")[:100],
            size=len(attachment.content),
            sha256=hashlib.sha256(attachment.content).hexdigest(),
            content=attachment.content,
            created_at=now,
        )
    )
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def _lock(conn: Connection, subject_id: str) -> None:
    """Share the register (a full rescore waits) and hold the subject: two cases or a case and
    a filing on the same person queue up instead of deciding on stale reads."""
    lock_register(conn, exclusive=False)
    lock_subject(conn, subject_id)


def _own_current_record(conn: Connection, subject_id: str, record_id: int) -> Any:
    row = conn.execute(select(records).where(records.c.id == record_id)).first()
    if row is None or row.subject_id != subject_id:
        # The same answer for someone else's record as for none: ids reveal nothing.
        raise NotFoundError(
            f"record {record_id} is not on your file", [Problem("record_id", "not found")]
        )
    if row.counts_until is not None:
        raise ConflictError(
            f"record {record_id} was superseded by a correction; act on its current version",
            [Problem("record_id", "superseded")],
        )
    if row.revoked:
        raise ConflictError(f"record {record_id} was revoked", [Problem("record_id", "revoked")])
    return row


def _open_case(conn: Connection, kind: CaseKind, record: Any) -> None:
    found = conn.execute(
        select(cases.c.id).where(
            cases.c.kind == kind.value,
            cases.c.record_id == record.id,
            cases.c.status == "open",
        )
    ).first()
    if found:
        raise ConflictError(
            f"there is already an open {kind.value} (case {found.id}) on record {record.id}",
            [Problem("record_id", "already open")],
        )


def _file_case(
    conn: Connection,
    register: Register,
    policy: Policy,
    *,
    kind: CaseKind,
    subject_id: str,
    grounds: str,
    record: Any | None = None,
    target: str | None = None,
    attachment_id: int | None = None,
) -> int:
    today, now = register.clock.today(), register.clock.now()
    due = policy.policy.objection_period.add_to(today)
    result = conn.execute(
        insert(cases).values(
            kind=kind.value,
            subject_id=subject_id,
            record_id=record.id if record is not None else None,
            category=record.category if record is not None else None,
            target=target,
            grounds=grounds,
            attachment_id=attachment_id,
            filed_on=today,
            due_on=due,
            filed_at=now,
            status="open",
        )
    )
    key = result.inserted_primary_key
    assert key is not None
    case_id = int(key[0])
    audit.append(
        conn,
        actor=f"subject:{subject_id}",
        action=f"{kind.value}.filed",
        at=now,
        subject_id=subject_id,
        payload={
            "case_id": case_id,
            "record_id": record.id if record is not None else None,
            "target": target,
            "due_on": due.isoformat(),
        },
    )
    notify(
        conn,
        subject_id,
        f"{kind.value}.{'filed' if kind == CaseKind.OBJECTION else 'requested'}",
        now,
        case_id=case_id,
        record_id=record.id if record is not None else None,
        message=f"It will be decided by {due.isoformat()}.",
    )
    return case_id


def object_to_record(
    register: Register,
    subject_id: str,
    record_id: int,
    grounds: str,
    attachment: Attachment | None = None,
) -> int:
    """A subject disputes one of their records; returns the case id."""
    grounds = _text(grounds, "grounds")
    now, today = register.clock.now(), register.clock.today()
    with register.write() as conn:
        _lock(conn, subject_id)
        version_id, policy = register.active_policy(conn)
        record = _own_current_record(conn, subject_id, record_id)
        _open_case(conn, CaseKind.OBJECTION, record)
        attachment_id = _store_attachment(conn, subject_id, attachment, now)
        case_id = _file_case(
            conn,
            register,
            policy,
            kind=CaseKind.OBJECTION,
            subject_id=subject_id,
            grounds=grounds,
            record=record,
            attachment_id=attachment_id,
        )
        refresh_subject(conn, policy, version_id, subject_id, today, now)
    return case_id


def request_repair(
    register: Register,
    subject_id: str,
    record_id: int,
    evidence: str,
    attachment: Attachment | None = None,
) -> int:
    """A subject asks to end a repairable record's effect early, with evidence."""
    evidence = _text(evidence, "evidence")
    now, today = register.clock.now(), register.clock.today()
    with register.write() as conn:
        _lock(conn, subject_id)
        _, policy = register.active_policy(conn)
        record = _own_current_record(conn, subject_id, record_id)
        category = policy.category_by_id.get(record.category)
        if category is None or not category.repairable:
            raise ValidationError(
                f"records of {record.category!r} cannot be repaired under the active policy",
                [Problem("record_id", "not repairable")],
            )
        if record.repaired_on is not None:
            raise ConflictError(
                f"record {record_id} was already repaired",
                [Problem("record_id", "already repaired")],
            )
        if record.ends_on <= today:
            raise ConflictError(
                f"record {record_id} has already stopped counting",
                [Problem("record_id", "no longer effective")],
            )
        _open_case(conn, CaseKind.REPAIR, record)
        attachment_id = _store_attachment(conn, subject_id, attachment, now)
        return _file_case(
            conn,
            register,
            policy,
            kind=CaseKind.REPAIR,
            subject_id=subject_id,
            grounds=evidence,
            record=record,
            attachment_id=attachment_id,
        )


def request_review(register: Register, subject_id: str, target: str, grounds: str) -> int:
    """A subject asks a person to review an automated outcome: `grade`, `list:ID` or
    `measure:ID`."""
    grounds = _text(grounds, "grounds")
    with register.write() as conn:
        _lock(conn, subject_id)
        _, policy = register.active_policy(conn)
        repository.subject_row(conn, subject_id)
        kind, _, ident = target.partition(":")
        valid = (
            (kind == "grade" and not ident)
            or (kind == "list" and ident in policy.list_by_id)
            or (kind == "measure" and ident in {m.id for m in policy.measures})
        )
        if not valid:
            raise ValidationError(
                "the review target is not an outcome of the active policy",
                [Problem("target", "use 'grade', 'list:<id>' or 'measure:<id>'")],
            )
        open_same = conn.execute(
            select(cases.c.id).where(
                cases.c.kind == "review",
                cases.c.subject_id == subject_id,
                cases.c.target == target,
                cases.c.status == "open",
            )
        ).first()
        if open_same:
            raise ConflictError(
                f"a review of {target} is already open (case {open_same.id})",
                [Problem("target", "already open")],
            )
        return _file_case(
            conn,
            register,
            policy,
            kind=CaseKind.REVIEW,
            subject_id=subject_id,
            grounds=grounds,
            target=target,
        )


def _correct(
    conn: Connection,
    register: Register,
    policy: Policy,
    record: Any,
    changes: dict[str, Any],
    *,
    actor: str,
    case_id: int,
    action: str,
) -> int:
    """Write a new version of a record; the old one is kept and stops counting today."""
    unknown = [k for k in changes if k not in CORRECTABLE]
    if unknown or not changes:
        raise ValidationError(
            "a correction names the fields that change",
            [Problem(f"changes.{k}", "cannot be corrected") for k in unknown]
            or [Problem("changes", f"give at least one of {', '.join(CORRECTABLE)}")],
        )
    today, now = register.clock.today(), register.clock.now()
    current = {key: record._mapping.get(key) for key in RECORD_FIELDS}
    current["decided_on"] = str(record.decided_on)
    current["occurred_on"] = str(record.occurred_on) if record.occurred_on else None
    current["amount"] = str(record.amount) if record.amount is not None else None
    merged = {k: v for k, v in {**current, **changes}.items() if v is not None}
    result = validate_record(merged, authority_id=record.authority_id, policy=policy, today=today)
    if isinstance(result, list):
        raise ValidationError(
            "the correction was refused",
            [Problem(f"changes.{p.location}", p.message) for p in result],
        )
    version = (
        int(
            conn.execute(
                select(func.max(records.c.version)).where(
                    records.c.authority_id == record.authority_id,
                    records.c.reference == record.reference,
                )
            ).scalar_one()
        )
        + 1
    )
    conn.execute(update(records).where(records.c.id == record.id).values(counts_until=today))
    batch_id = repository.new_batch(conn, "correction", f"case {case_id}", now, record.authority_id)
    row_hash = record_hash(
        result.authority_id,
        result.reference,
        version,
        result.subject_id,
        result.category,
        result.decided_on,
        result.occurred_on,
        result.legal_basis,
        result.summary,
        result.amount,
        result.evidence_uri,
    )
    ends = policy.category_by_id[result.category].valid_for.add_to(result.decided_on)
    if record.repaired_on is not None and record.repaired_on < ends:
        ends = record.repaired_on
    inserted = conn.execute(
        insert(records).values(
            authority_id=result.authority_id,
            reference=result.reference,
            version=version,
            subject_id=result.subject_id,
            category=result.category,
            decided_on=result.decided_on,
            occurred_on=result.occurred_on,
            legal_basis=result.legal_basis,
            summary=result.summary,
            amount=result.amount,
            evidence_uri=result.evidence_uri,
            batch_id=batch_id,
            row_hash=row_hash,
            filed_at=now,
            ends_on=ends,
            revoked=False,
            counts_from=today,
            repaired_on=record.repaired_on,
        )
    )
    key = inserted.inserted_primary_key
    assert key is not None
    new_id = int(key[0])
    audit.append(
        conn,
        actor=actor,
        action=action,
        at=now,
        subject_id=record.subject_id,
        digest=audit.rows_digest([row_hash]),
        payload={
            "case_id": case_id,
            "outcome": "correct",
            "batch_id": batch_id,
            "stored": 1,
            "old_record_id": record.id,
            "new_record_id": new_id,
            "changes": sorted(changes),
        },
    )
    notify(conn, record.subject_id, "record.corrected", now, record_id=new_id, case_id=case_id)
    return new_id


def _revoke(conn: Connection, record: Any, *, case_id: int, now: datetime) -> None:
    conn.execute(
        update(records)
        .where(
            records.c.authority_id == record.authority_id, records.c.reference == record.reference
        )
        .values(revoked=True)
    )
    notify(conn, record.subject_id, "record.revoked", now, record_id=record.id, case_id=case_id)


def decide_case(
    register: Register,
    case_id: int,
    *,
    reviewer: str,
    outcome: str,
    reasons: str,
    repair_on: date | None = None,
    record_id: int | None = None,
    changes: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A reviewer decides an open case; the reasons are shown to the subject."""
    reasons = _text(reasons, "reasons")
    today, now = register.clock.today(), register.clock.now()
    with register.write() as conn:
        lock_register(conn, exclusive=False)
        version_id, policy = register.active_policy(conn)
        case = conn.execute(select(cases).where(cases.c.id == case_id)).first()
        if case is None:
            raise NotFoundError(f"case {case_id} does not exist")
        lock_subject(conn, case.subject_id)
        # Read again behind the lock: a decision that committed meanwhile is seen.
        case = conn.execute(select(cases).where(cases.c.id == case_id)).one()
        if case.status != "open":
            raise ConflictError(f"case {case_id} was already decided ({case.status})")
        kind = CaseKind(case.kind)
        try:
            decided = Outcome(outcome)
        except ValueError:
            decided = None
        if decided is None or decided not in ALLOWED[kind]:
            allowed = ", ".join(sorted(ALLOWED[kind]))
            raise ValidationError(
                f"a {kind.value} is decided with one of: {allowed}",
                [Problem("outcome", f"{outcome!r} is not allowed")],
            )
        record = None
        target_id = case.record_id if kind != CaseKind.REVIEW else record_id
        if decided in (Outcome.CORRECT, Outcome.REVOKE, Outcome.APPROVE):
            if target_id is None:
                raise ValidationError(
                    "name the record to correct or revoke", [Problem("record_id", "required")]
                )
            record = conn.execute(select(records).where(records.c.id == target_id)).first()
            if record is None or record.subject_id != case.subject_id:
                raise ValidationError(
                    "the record is not on this subject's file",
                    [Problem("record_id", "not on this file")],
                )
            if record.counts_until is not None or record.revoked:
                raise ConflictError(
                    "the record was already superseded or revoked",
                    [Problem("record_id", "not current")],
                )
        new_record_id = None
        actor = f"reviewer:{reviewer}"
        action = f"{kind.value}.decided"
        if decided == Outcome.CORRECT:
            assert record is not None
            new_record_id = _correct(
                conn,
                register,
                policy,
                record,
                changes or {},
                actor=actor,
                case_id=case_id,
                action=action,
            )
        elif decided == Outcome.REVOKE:
            assert record is not None
            _revoke(conn, record, case_id=case_id, now=now)
        elif decided == Outcome.APPROVE:
            assert record is not None
            repair_on = repair_on or today
            if repair_on < record.decided_on:
                raise ValidationError(
                    "the repair date is before the decision it repairs",
                    [Problem("repair_on", f"before {record.decided_on}")],
                )
            conn.execute(
                update(records)
                .where(
                    records.c.authority_id == record.authority_id,
                    records.c.reference == record.reference,
                )
                .values(repaired_on=repair_on)
            )
            conn.execute(
                update(records)
                .where(
                    records.c.authority_id == record.authority_id,
                    records.c.reference == record.reference,
                    records.c.ends_on > repair_on,
                )
                .values(ends_on=repair_on)
            )
            notify(
                conn,
                case.subject_id,
                "record.repaired",
                now,
                record_id=record.id,
                case_id=case_id,
                message=f"It stops counting on {repair_on.isoformat()}.",
            )
        conn.execute(
            update(cases)
            .where(cases.c.id == case_id)
            .values(
                status=STATUS[decided],
                outcome=decided.value,
                decided_on=today,
                decided_at=now,
                decided_by=reviewer,
                reasons=reasons,
                repair_on=repair_on if decided == Outcome.APPROVE else None,
                new_record_id=new_record_id,
            )
        )
        if decided != Outcome.CORRECT:  # a correction wrote its entry with the new row
            audit.append(
                conn,
                actor=actor,
                action=action,
                at=now,
                subject_id=case.subject_id,
                payload={
                    "case_id": case_id,
                    "outcome": decided.value,
                    "record_id": target_id,
                    "repair_on": repair_on.isoformat() if repair_on else None,
                },
            )
        notify(
            conn,
            case.subject_id,
            action,
            now,
            case_id=case_id,
            record_id=new_record_id or target_id,
            message=f"Decision: {decided.value}. Reasons: {reasons}",
        )
        refresh_subject(conn, policy, version_id, case.subject_id, today, now)
        return case_view(
            conn, conn.execute(select(cases).where(cases.c.id == case_id)).one(), today
        )


def case_view(conn: Connection, case: Any, today: date) -> dict[str, Any]:
    """A case as shown to its subject and to reviewers."""
    attachment = None
    if case.attachment_id:
        att = conn.execute(
            select(
                attachments.c.filename,
                attachments.c.size,
                attachments.c.sha256,
                attachments.c.content_type,
            ).where(attachments.c.id == case.attachment_id)
        ).one()
        attachment = {
            "filename": att.filename,
            "size": att.size,
            "sha256": att.sha256,
            "content_type": att.content_type,
        }
    return {
        "id": case.id,
        "kind": case.kind,
        "subject_id": case.subject_id,
        "record_id": case.record_id,
        "target": case.target,
        "grounds": case.grounds,
        "attachment": attachment,
        "filed_on": case.filed_on.isoformat(),
        "due_on": case.due_on.isoformat(),
        "overdue": case.status == "open" and case.due_on <= today,
        "status": case.status,
        "outcome": case.outcome,
        "reasons": case.reasons,
        "decided_on": case.decided_on.isoformat() if case.decided_on else None,
        "decided_by": case.decided_by,
        "repair_on": case.repair_on.isoformat() if case.repair_on else None,
        "new_record_id": case.new_record_id,
    }


def queue(
    register: Register, *, status: str = "open", limit: int = 100, offset: int = 0
) -> list[dict[str, Any]]:
    """The reviewer queue: cases by due date, the most urgent first."""
    today = register.clock.today()
    with register.read() as conn:
        rows = conn.execute(
            select(cases)
            .where(cases.c.status == status)
            .order_by(cases.c.due_on, cases.c.id)
            .limit(limit)
            .offset(offset)
        ).all()
        return [case_view(conn, row, today) for row in rows]


def get_case(register: Register, case_id: int, *, subject_id: str | None = None) -> dict[str, Any]:
    """One case; a subject sees only their own (others look like they do not exist)."""
    with register.read() as conn:
        row = conn.execute(select(cases).where(cases.c.id == case_id)).first()
        if row is None or (subject_id is not None and row.subject_id != subject_id):
            raise NotFoundError(f"case {case_id} does not exist")
        return case_view(conn, row, register.clock.today())


def subject_cases(conn: Connection, subject_id: str, today: date) -> list[dict[str, Any]]:
    """Every case a subject opened, newest first."""
    rows = conn.execute(
        select(cases).where(cases.c.subject_id == subject_id).order_by(cases.c.id.desc())
    ).all()
    return [case_view(conn, row, today) for row in rows]


def attachment_of(
    register: Register, case_id: int, *, subject_id: str | None = None
) -> tuple[str, str, bytes]:
    """The attachment of a case: (filename, content type, bytes)."""
    with register.read() as conn:
        row = conn.execute(
            select(
                cases.c.subject_id,
                attachments.c.filename,
                attachments.c.content_type,
                attachments.c.content,
            )
            .join(attachments, attachments.c.id == cases.c.attachment_id)
            .where(cases.c.id == case_id)
        ).first()
    if row is None or (subject_id is not None and row.subject_id != subject_id):
        raise NotFoundError(f"case {case_id} has no attachment")
    return row.filename, row.content_type, bytes(row.content)
