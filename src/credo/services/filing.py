"""Filing records: one at a time (API) or in bulk (CSV / JSON Lines), idempotent per reference."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from itertools import islice
from typing import Any

from sqlalchemy import select

from credo.domain.errors import Problem, ValidationError
from credo.domain.filing import NewRecord, validate_record
from credo.domain.policy import Policy
from credo.domain.scoring import Standing, compute_standing
from credo.services.notices import notify, notify_batch
from credo.services.register import Register
from credo.services.sources import SourceRow
from credo.store import audit, repository
from credo.store.db import is_sqlite
from credo.store.repository import RECORD_COLUMNS
from credo.store.rescore import catch_up, lock_register
from credo.store.tables import records


@dataclass(frozen=True, slots=True)
class Reject:
    """A row that was not stored, and why."""

    line: int
    problems: list[Problem]
    raw: str = ""

    @property
    def reason(self) -> str:
        """All problems on one line."""
        return "; ".join(str(p) for p in self.problems)


@dataclass
class ImportReport:
    """What an import stored, skipped as already filed, and refused."""

    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    batches: int = 0
    rescored: int = 0
    first_rejects: list[Reject] = field(default_factory=list)

    def add_reject(self, reject: Reject) -> None:
        """Count a reject; keep the first hundred for display."""
        self.rejected += 1
        if len(self.first_rejects) < 100:
            self.first_rejects.append(reject)


@dataclass(frozen=True)
class Filed:
    """The outcome of filing one record."""

    record_id: int
    created: bool
    standing: Standing | None


def _ignore(line: int, status: str, reference: str) -> None:
    """Default row-outcome hook: nothing to do."""


def _classify(
    candidates: list[tuple[int, NewRecord, str, str]],
    known_subjects: set[str],
    filed: dict[str, str],
    report: ImportReport,
    on_reject: Callable[[Reject], None],
    on_accept: Callable[[int, str, str], None] = _ignore,
) -> list[tuple[NewRecord, str]]:
    """Split validated rows into new ones, retries of stored ones, and conflicts."""
    fresh: list[tuple[NewRecord, str]] = []
    for line, rec, row_hash, raw in candidates:
        if rec.subject_id not in known_subjects:
            _reject(
                report,
                on_reject,
                Reject(
                    line,
                    [Problem("subject_id", f"subject {rec.subject_id!r} is not registered")],
                    raw,
                ),
            )
            continue
        previous = filed.get(rec.reference)
        if previous is None:
            filed[rec.reference] = row_hash
            fresh.append((rec, row_hash))
            on_accept(line, "stored", rec.reference)
        elif previous == row_hash:
            report.duplicates += 1
            on_accept(line, "duplicate", rec.reference)
        else:
            _reject(
                report,
                on_reject,
                Reject(
                    line,
                    [
                        Problem(
                            "reference",
                            f"{rec.reference!r} is already filed by this authority with "
                            "different content; a changed decision is a correction, "
                            "not a new filing",
                        )
                    ],
                    raw,
                ),
            )
    return fresh


def _reject(report: ImportReport, on_reject: Callable[[Reject], None], reject: Reject) -> None:
    report.add_reject(reject)
    on_reject(reject)


def _store_batch(
    conn: Any,
    policy: Policy,
    authority_id: str,
    fresh: list[tuple[NewRecord, str]],
    *,
    source: str,
    actor: str,
    now: datetime,
) -> int:
    """Insert one batch of new records and its audit entry; returns the batch id."""
    batch_id = repository.new_batch(conn, "records", source, now, authority_id)
    sqlite = is_sqlite(conn)
    categories = policy.category_by_id
    stamp = now.isoformat(sep=" ") if sqlite else now
    rows = []
    for rec, row_hash in fresh:
        ends = categories[rec.category].valid_for.add_to(rec.decided_on)
        rows.append(
            (
                rec.authority_id,
                rec.reference,
                1,
                rec.subject_id,
                rec.category,
                rec.decided_on.isoformat() if sqlite else rec.decided_on,
                (rec.occurred_on.isoformat() if sqlite else rec.occurred_on)
                if rec.occurred_on
                else None,
                rec.legal_basis,
                rec.summary,
                (str(rec.amount) if sqlite else rec.amount) if rec.amount is not None else None,
                rec.evidence_uri,
                batch_id,
                row_hash,
                stamp,
                ends.isoformat() if sqlite else ends,
                False,
            )
        )
    repository.insert_rows(conn, "records", RECORD_COLUMNS, rows)
    notify_batch(conn, batch_id, now)
    count, first, last = repository.record_ids_for_batch(conn, batch_id)
    audit.append(
        conn,
        actor=actor,
        action="records.filed",
        at=now,
        digest=audit.rows_digest(h for _, h in fresh),
        payload={
            "batch_id": batch_id,
            "authority": authority_id,
            "source": source,
            "stored": count,
            "first_record_id": first,
            "last_record_id": last,
        },
    )
    return batch_id


def _batches(rows: Iterable[SourceRow], size: int) -> Iterator[list[SourceRow]]:
    it = iter(rows)
    while batch := list(islice(it, size)):
        yield batch


def import_records(
    register: Register,
    rows: Iterable[SourceRow],
    *,
    authority_id: str,
    actor: str,
    source: str,
    batch_size: int = 20_000,
    on_reject: Callable[[Reject], None] = lambda r: None,
    on_batch: Callable[[ImportReport], None] = lambda r: None,
    on_accept: Callable[[int, str, str], None] = _ignore,
) -> ImportReport:
    """Validate every row, store the good ones (one transaction per batch), then rescore.

    Re-running the same rows stores nothing twice: a reference the authority already filed
    with the same content is counted as a duplicate; with other content it is refused.
    """
    with register.read() as conn:
        _, policy = register.active_policy(conn)
    _require_authority(policy, authority_id)
    today = register.clock.today()
    report = ImportReport()
    for batch in _batches(rows, batch_size):
        candidates: list[tuple[int, NewRecord, str, str]] = []
        for row in batch:
            if row.fields is None:
                assert row.problem is not None
                _reject(report, on_reject, Reject(row.line, [row.problem], row.raw))
                continue
            result = validate_record(
                row.fields, authority_id=authority_id, policy=policy, today=today
            )
            if isinstance(result, list):
                _reject(report, on_reject, Reject(row.line, result, row.raw))
            else:
                candidates.append((row.line, result, result.content_hash(), row.raw))
        if candidates:
            now = register.clock.now()
            with register.write() as conn:
                lock_register(conn, exclusive=False, authority_id=authority_id)
                known = set(
                    repository.existing_subjects(conn, (c[1].subject_id for c in candidates))
                )
                filed = repository.existing_references(
                    conn, authority_id, (c[1].reference for c in candidates)
                )
                fresh = _classify(candidates, known, filed, report, on_reject, on_accept)
                if fresh:
                    _store_batch(
                        conn, policy, authority_id, fresh, source=source, actor=actor, now=now
                    )
                    report.stored += len(fresh)
                    report.batches += 1
        on_batch(report)
    if report.stored:
        report.rescored = rescore_register_pending(register)
    return report


def rescore_register_pending(register: Register) -> int:
    """Bring stored standings up to date with every record filed since the last rescore."""
    with register.write() as conn:
        lock_register(conn, exclusive=True)
        version_id, policy = register.active_policy(conn)
        return catch_up(conn, policy, version_id, register.clock.today(), register.clock.now())


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
    _require_authority(policy, authority_id)
    result = validate_record(fields, authority_id=authority_id, policy=policy, today=today)
    if isinstance(result, list):
        raise ValidationError("the record was refused", result)
    row_hash = result.content_hash()
    now = register.clock.now()
    with register.write() as conn:
        lock_register(conn, exclusive=False, authority_id=authority_id)
        version_id, policy = register.active_policy(conn)
        report = ImportReport()
        rejects: list[Reject] = []
        known = set(repository.existing_subjects(conn, [result.subject_id]))
        filed = repository.existing_references(conn, authority_id, [result.reference])
        fresh = _classify([(1, result, row_hash, "")], known, filed, report, rejects.append)
        if rejects:
            raise ValidationError("the record was refused", rejects[0].problems)
        if fresh:
            _store_batch(conn, policy, authority_id, fresh, source=source, actor=actor, now=now)
        record_id = conn.execute(
            select(records.c.id).where(
                records.c.authority_id == authority_id,
                records.c.reference == result.reference,
                records.c.version == 1,
            )
        ).scalar_one()
        standing = None
        if fresh:
            standing = refresh_subject(conn, policy, version_id, result.subject_id, today, now)
    return Filed(record_id=int(record_id), created=bool(fresh), standing=standing)


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
    repository.save_standing(conn, standing, version_id)
    return standing


def subject_standing(conn: Any, policy: Policy, subject_id: str, as_of: date) -> Standing:
    """Compute one subject's standing from the stored records (pure scorer)."""
    return compute_standing(policy, subject_id, repository.record_facts(conn, subject_id), as_of)


def _require_authority(policy: Policy, authority_id: str) -> None:
    if authority_id not in policy.authority_by_id:
        known = ", ".join(sorted(policy.authority_by_id)) or "none"
        raise ValidationError(
            f"authority {authority_id!r} is not declared in the active policy (known: {known})",
            [Problem("authority", f"unknown authority {authority_id!r}")],
        )
