"""Registering subjects from CSV / JSON Lines: validated, batched, audited, idempotent."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from credo.domain.errors import NoActivePolicyError, Problem
from credo.domain.scoring import compute_standing
from credo.domain.subjects import NewSubject, validate_subject
from credo.services.importing import ImportReport, Reject
from credo.services.record_batches import batches_of
from credo.services.register import Register
from credo.services.sources import SourceRow, raw_text
from credo.store import audit, repository
from credo.store.db import is_sqlite

SUBJECT_COLUMNS = (
    "id",
    "name",
    "kind",
    "organisation",
    "position",
    "email",
    "batch_id",
    "row_hash",
    "created_at",
)


def import_subjects(
    register: Register,
    rows: Iterable[SourceRow],
    *,
    actor: str,
    source: str,
    batch_size: int = 20_000,
    on_reject: Callable[[Reject], None] = lambda r: None,
    on_batch: Callable[[ImportReport], None] = lambda r: None,
) -> ImportReport:
    """Register every valid subject; re-importing the same rows stores nothing twice."""
    report = ImportReport()
    for batch in batches_of(rows, batch_size):
        candidates: list[tuple[int, NewSubject, str, str]] = []
        for row in batch:
            if row.fields is None:
                assert row.problem is not None
                _refuse(report, on_reject, Reject(row.line, [row.problem], row.raw))
                continue
            result = validate_subject(row.fields)
            if isinstance(result, list):
                _refuse(report, on_reject, Reject(row.line, result, raw_text(row)))
            else:
                candidates.append((row.line, result, result.content_hash(), raw_text(row)))
        if candidates:
            _store(register, candidates, report, on_reject, actor=actor, source=source)
        on_batch(report)
    if report.stored >= repository.BIG_LOAD:
        with register.write() as conn:
            repository.refresh_statistics(conn, "subjects")
    return report


def _by_id(item: tuple[NewSubject, str]) -> str:
    return item[0].subject_id


def _refuse(report: ImportReport, on_reject: Callable[[Reject], None], reject: Reject) -> None:
    report.add_reject(reject)
    on_reject(reject)


def _store(
    register: Register,
    candidates: list[tuple[int, NewSubject, str, str]],
    report: ImportReport,
    on_reject: Callable[[Reject], None],
    *,
    actor: str,
    source: str,
) -> None:
    now = register.clock.now()
    with register.write() as conn:
        known = repository.existing_subjects(conn, (c[1].subject_id for c in candidates))
        fresh: list[tuple[NewSubject, str]] = []
        for line, subject, row_hash, raw in candidates:
            previous = known.get(subject.subject_id)
            if previous is None:
                known[subject.subject_id] = row_hash
                fresh.append((subject, row_hash))
            elif previous == row_hash:
                report.duplicates += 1
            else:
                _refuse(
                    report,
                    on_reject,
                    Reject(
                        line,
                        [
                            Problem(
                                "subject_id",
                                f"{subject.subject_id!r} is already registered with other details",
                            )
                        ],
                        raw,
                    ),
                )
        if not fresh:
            return
        batch_id = repository.new_batch(conn, "subjects", source, now)
        sqlite = is_sqlite(conn)
        stamp = now.isoformat(sep=" ") if sqlite else now
        repository.insert_rows(
            conn,
            "subjects",
            SUBJECT_COLUMNS,
            [
                (
                    s.subject_id,
                    s.name,
                    s.kind.value,
                    s.organisation,
                    s.position,
                    s.email,
                    batch_id,
                    h,
                    stamp,
                )
                for s, h in fresh
            ],
        )
        try:
            version_id, policy = register.active_policy(conn)
        except NoActivePolicyError:
            pass  # activation scores everyone
        else:
            today = register.clock.today()
            base = compute_standing(policy, "", [], today)
            repository.insert_rows(
                conn,
                "standings",
                ("subject_id", "as_of", "policy_version_id", "score", "grade", "lists", "measures"),
                [
                    (
                        s.subject_id,
                        today.isoformat() if sqlite else today,
                        version_id,
                        base.score,
                        base.grade,
                        ",".join(base.lists),
                        ",".join(base.measures),
                    )
                    for s, _ in fresh
                ],
            )
        audit.append(
            conn,
            actor=actor,
            action="subjects.imported",
            at=now,
            digest=audit.rows_digest(h for _, h in sorted(fresh, key=_by_id)),
            payload={"batch_id": batch_id, "source": source, "stored": len(fresh)},
        )
        report.stored += len(fresh)
        report.batches += 1
