"""Filing one record (the API's POST /v1/records, the department pages): stored and its
subject rescored in the same transaction, idempotent per reference."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select

from credo.domain.errors import ValidationError
from credo.domain.policy import Policy
from credo.domain.scoring import Standing, compute_standing
from credo.services.notices import notify
from credo.services.record_batches import (
    REF,
    SUBJECT,
    ImportReport,
    Reject,
    classify,
    prepare_batch,
    require_authority,
    store_batch,
)
from credo.services.register import Register
from credo.services.sources import SourceRow
from credo.store import memberships, repository
from credo.store.rescore import lock_register
from credo.store.tables import records, subjects


@dataclass(frozen=True)
class Filed:
    """The outcome of filing one record."""

    record_id: int
    created: bool
    standing: Standing | None


def file_record(
    register: Register,
    fields: dict[str, Any],
    *,
    authority_id: str,
    actor: str,
    source: str = "api",
) -> Filed:
    """File one record and rescore its subject in the same transaction.

    A retry with the same reference and content returns the stored record (created=False).
    """
    today = register.clock.today()
    with register.read() as conn:
        _, policy = register.active_policy(conn)
    require_authority(policy, authority_id)
    prepared = prepare_batch(
        [SourceRow(1, fields)], policy=policy, authority_id=authority_id, today=today
    )
    if prepared.rejects:
        raise ValidationError("the record was refused", prepared.rejects[0].problems)
    row = prepared.rows[0]
    subject_id, reference = row[SUBJECT], row[REF]
    now = register.clock.now()
    with register.write() as conn:
        lock_register(conn, exclusive=False, authority_id=authority_id)
        lock_subject(conn, subject_id)
        version_id, policy = register.active_policy(conn)
        report = ImportReport()
        rejects: list[Reject] = []
        known = repository.registered_subjects(conn, [subject_id])
        filed = repository.existing_references(conn, authority_id, [reference])
        fresh = classify(prepared, known, filed, report, rejects.append)
        if rejects:
            raise ValidationError("the record was refused", rejects[0].problems)
        if fresh:
            store_batch(conn, authority_id, prepared.rows, source=source, actor=actor, now=now)
        record_id = conn.execute(
            select(records.c.id).where(
                records.c.authority_id == authority_id,
                records.c.reference == reference,
                records.c.version == 1,
            )
        ).scalar_one()
        standing = None
        if fresh:
            standing = refresh_subject(conn, policy, version_id, subject_id, today, now)
    return Filed(record_id=int(record_id), created=bool(fresh), standing=standing)


def lock_subject(conn: Any, subject_id: str) -> None:
    """Queue this transaction behind any other one writing about the same subject, so that
    its checks and its rescore see what they committed (PostgreSQL; SQLite serialises).

    Take it after the register and authority locks and before any audit append.
    """
    conn.execute(select(subjects.c.id).where(subjects.c.id == subject_id).with_for_update())


def refresh_subject(
    conn: Any, policy: Policy, version_id: int, subject_id: str, today: date, now: datetime
) -> Standing:
    """Recompute one subject's stored standing (pure scorer) and notify a changed membership."""
    standing = subject_standing(conn, policy, subject_id, today)
    before = repository.stored_standing(conn, subject_id)
    old = f"{before.lists}|{before.measures}" if before is not None else "|"
    new = f"{','.join(standing.lists)}|{','.join(standing.measures)}"
    if old != new:
        notify(conn, subject_id, "standing.changed", now, before=old, after=new)
        change = memberships.Change.of(
            subject_id,
            standing.grade,
            (before.lists if before is not None else "", ",".join(standing.lists)),
            (before.measures if before is not None else "", ",".join(standing.measures)),
        )
        memberships.track(conn, policy, version_id, today, now, [change])
    repository.save_standing(conn, standing, version_id)
    return standing


def subject_standing(conn: Any, policy: Policy, subject_id: str, as_of: date) -> Standing:
    """Compute one subject's standing from the stored records (pure scorer)."""
    return compute_standing(policy, subject_id, repository.record_facts(conn, subject_id), as_of)
