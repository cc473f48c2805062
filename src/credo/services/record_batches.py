"""Batches of records: validated (in a worker process or not), classified against what is
stored, and stored with their notices and one audit entry each, idempotent per reference.

Both ways of filing go through here: `credo import` and the batch API (credo.services.
importing) and a single record (credo.services.filing).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache, partial
from itertools import islice
from operator import itemgetter
from typing import Any

import psycopg
from sqlalchemy.exc import IntegrityError

from credo.domain.durations import Duration
from credo.domain.errors import Problem, ValidationError
from credo.domain.filing import RECORD_FIELDS, NewRecord, validate_plain, validate_record
from credo.domain.policy import Policy
from credo.services.notices import FILED_COLUMNS, filed_copy_text, notify_records, notify_stored
from credo.services.register import Register
from credo.services.sources import RawChunk, SourceRow, csv_rows, raw_text
from credo.store import audit, repository
from credo.store.db import is_sqlite
from credo.store.rescore import lock_register


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
    snapshot: str = ""  # how the policy preview's snapshot was kept ("" when not)

    def add_reject(self, reject: Reject) -> None:
        """Count a reject; keep the first hundred for display."""
        self.rejected += 1
        if len(self.first_rejects) < 100:
            self.first_rejects.append(reject)


def ignore(line: int, status: str, reference: str) -> None:
    """Default row-outcome hook: nothing to do."""


# An insert-ready record row: the records columns but batch_id and filed_at,
# dates as ISO text (both SQLite and COPY take them). Index positions used below:
REF, SUBJECT, HASH = 1, 3, 11
ROW_COLUMNS = (
    "authority_id", "reference", "version", "subject_id", "category", "decided_on",
    "occurred_on", "legal_basis", "summary", "amount", "evidence_uri", "row_hash", "ends_on",
    "revoked",
)  # fmt: skip


@dataclass
class Prepared:
    """One batch after validation: rows ready to store, and the rows refused.

    With `copy` (PostgreSQL), each row keeps only its key fields (reference, subject, row
    hash, at their usual positions) and the rest lives in its COPY line: a worker process
    sends half the objects back, and pickling them cost more than validating.
    """

    rows: list[tuple[Any, ...]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    # Each row as a line of PostgreSQL COPY text (no id, batch or time yet), when asked for:
    # formatting in the validating worker spares the process that writes.
    copy: list[str] | None = None
    # The batch's subjects found unregistered where it was validated (SQLite: the worker
    # reads them), or None when the store is to check them.
    unknown: set[str] | None = None


def prepare_batch(
    batch: list[SourceRow],
    *,
    policy: Policy,
    authority_id: str,
    today: date,
    copy_text: bool = False,
) -> Prepared:
    """Validate, hash and date every row of a batch (pure: runs in a worker process too)."""
    out = _Filling(policy, copy_text)
    for row in batch:
        if row.fields is None:
            assert row.problem is not None
            out.refuse(Reject(row.line, [row.problem], row.raw))
            continue
        rec = validate_record(row.fields, authority_id=authority_id, policy=policy, today=today)
        if isinstance(rec, list):
            out.refuse(Reject(row.line, rec, raw_text(row)))
        else:
            out.add(row.line, rec)
    return out.prepared


def prepare_csv_chunk(
    chunk: RawChunk,
    *,
    policy: Policy,
    authority_id: str,
    today: date,
    copy_text: bool = False,
) -> Prepared:
    """`prepare_batch(parse_chunk(chunk))` for a CSV chunk, the same result for less work.

    Most rows of a file are plain: they go through `validate_plain` from their values, with
    no dictionary built; any other row takes `validate_record`, which names its problems.
    """
    out = _Filling(policy, copy_text)
    names = chunk.names
    missing = len(names)  # a column the file lacks reads as this position: an empty text
    positions = [names.index(n) if n in names else missing for n in RECORD_FIELDS]
    pad = missing in positions
    pick = itemgetter(*positions)
    filable = policy.filable_by(authority_id)
    for item in csv_rows(chunk):
        if isinstance(item, SourceRow):
            assert item.problem is not None
            out.refuse(Reject(item.line, [item.problem], item.raw))
            continue
        line, values = item
        if pad:
            values.append("")
        rec = validate_plain(pick(values), authority_id=authority_id, filable=filable, today=today)
        if rec is None:
            if pad:
                values.pop()
            fields = dict(zip(names, values, strict=True))
            checked = validate_record(fields, authority_id=authority_id, policy=policy, today=today)
            if isinstance(checked, list):
                out.refuse(Reject(line, checked, raw_text(SourceRow(line, fields))))
                continue
            rec = checked
        out.add(line, rec)
    return out.prepared


class _Filling:
    """A batch being prepared: each validated record becomes a row to store, with its end
    date and, for PostgreSQL, its COPY text."""

    def __init__(self, policy: Policy, copy_text: bool) -> None:
        self.prepared = Prepared(copy=[] if copy_text else None)
        self._categories = policy.category_by_id

    def refuse(self, reject: Reject) -> None:
        self.prepared.rejects.append(reject)

    def add(self, line: int, rec: NewRecord) -> None:
        ends = _ends_on(self._categories[rec.category].valid_for, rec.decided_on)
        stored = (
            rec.authority_id,
            rec.reference,
            1,
            rec.subject_id,
            rec.category,
            rec.decided_on.isoformat(),
            rec.occurred_on.isoformat() if rec.occurred_on else None,
            rec.legal_basis,
            rec.summary,
            None if rec.amount is None else str(rec.amount),
            rec.evidence_uri,
            rec.content_hash(),
            ends,
            False,
        )
        out = self.prepared
        out.lines.append(line)
        if out.copy is None:
            out.rows.append(stored)
        else:
            out.copy.append(record_copy_line(stored))
            out.rows.append(_keys_only(stored))


@lru_cache(maxsize=1 << 16)
def _ends_on(valid_for: Duration, decided_on: date) -> str:
    """A record's end date as text (cached: a file's records share their days)."""
    return valid_for.add_to(decided_on).isoformat()


def record_copy_line(row: tuple[Any, ...]) -> str:
    """`repository.copy_line` of a stored row, without its per-field work when no field
    needs escaping (a validated row holds text but for its version and revoked flag)."""
    occurred, amount, uri = row[6], row[9], row[10]
    nulls = (occurred is None) + (amount is None) + (uri is None)  # a backslash each: \\N
    line = "\t".join(
        (
            *row[:2],
            str(row[2]),
            *row[3:6],
            "\\N" if occurred is None else occurred,
            *row[7:9],
            "\\N" if amount is None else amount,
            "\\N" if uri is None else uri,
            *row[11:13],
            "t" if row[13] else "f",
        )
    )
    if line.count("\\") != nulls or "\n" in line or "\r" in line or line.count("\t") != 13:
        return repository.copy_line(row)
    return line


def _keys_only(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return (None, row[REF], None, row[SUBJECT], *(None,) * 7, row[HASH])


_FILE_FIELDS = (1, 3, 4, 5, 6, 7, 8, 9, 10)  # positions of the file's fields in a row


def _row_text(prepared: Prepared, at: int) -> str:
    """A stored-to-be row as the file's fields, for the rejects file."""
    if prepared.copy is None:
        values = [prepared.rows[at][i] for i in _FILE_FIELDS]
    else:
        parts = prepared.copy[at].split("\t")
        values = [
            None if parts[i] == "\\N" else repository.copy_unescape(parts[i]) for i in _FILE_FIELDS
        ]
    return ",".join("" if v is None else str(v) for v in values)


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What becomes of one validated row: stored, a retry of a stored one, or refused."""

    at: int
    line: int
    status: str  # "stored", "duplicate" or "rejected"
    reference: str
    reject: Reject | None = None


# A batch's plan: the positions of its new rows, and the other rows' outcomes (retries of
# stored references and refusals), each in row order.
Plan = tuple[list[int], list[_Outcome]]


def plan_batch(prepared: Prepared, known_subjects: set[str], filed: dict[str, str]) -> Plan:
    """Each validated row's outcome, given the references already filed (`filed`, which
    this batch's new references are added to)."""
    fresh: list[int] = []
    others: list[_Outcome] = []
    lines = prepared.lines
    for at, row in enumerate(prepared.rows):
        subject_id, reference, row_hash = row[SUBJECT], row[REF], row[HASH]
        if subject_id not in known_subjects:
            problem = Problem("subject_id", f"subject {subject_id!r} is not registered")
            reject = Reject(lines[at], [problem], _row_text(prepared, at))
            others.append(_Outcome(at, lines[at], "rejected", reference, reject))
            continue
        previous = filed.get(reference)
        if previous is None:
            filed[reference] = row_hash
            fresh.append(at)
        elif previous == row_hash:
            others.append(_Outcome(at, lines[at], "duplicate", reference))
        else:
            problem = Problem(
                "reference",
                f"{reference!r} is already filed by this authority with different content; "
                "a changed decision is a correction, not a new filing",
            )
            reject = Reject(lines[at], [problem], _row_text(prepared, at))
            others.append(_Outcome(at, lines[at], "rejected", reference, reject))
    return fresh, others


def report_plan(
    prepared: Prepared,
    plan: Plan,
    report: ImportReport,
    on_reject: Callable[[Reject], None],
    on_accept: Callable[[int, str, str], None],
) -> list[int]:
    """Count and report the outcomes, in row order; returns the positions to store."""
    fresh, others = plan
    stored = (_Outcome(at, prepared.lines[at], "stored", prepared.rows[at][REF]) for at in fresh)
    outcomes = others if on_accept is ignore else sorted([*stored, *others], key=_position)
    for outcome in outcomes:
        if outcome.reject is not None:
            reject_row(report, on_reject, outcome.reject)
            continue
        if outcome.status == "duplicate":
            report.duplicates += 1
        on_accept(outcome.line, outcome.status, outcome.reference)
    return fresh


def _position(outcome: _Outcome) -> int:
    return outcome.at


def classify(
    prepared: Prepared,
    known_subjects: set[str],
    filed: dict[str, str],
    report: ImportReport,
    on_reject: Callable[[Reject], None],
    on_accept: Callable[[int, str, str], None] = ignore,
) -> list[int]:
    """Split validated rows into new ones (their positions), retries of stored ones, and
    conflicts."""
    plan = plan_batch(prepared, known_subjects, filed)
    return report_plan(prepared, plan, report, on_reject, on_accept)


def reject_row(report: ImportReport, on_reject: Callable[[Reject], None], reject: Reject) -> None:
    report.add_reject(reject)
    on_reject(reject)


def store_batch(
    conn: Any,
    authority_id: str,
    fresh: list[tuple[Any, ...]],
    *,
    source: str,
    actor: str,
    now: datetime,
    copy: list[str] | None = None,
) -> int:
    """Insert one batch of new records, their notices and the audit entry; returns its id.

    `copy`: the rows as COPY text lines (PostgreSQL), when the worker made them.
    """
    if copy is not None and not is_sqlite(conn):
        _, batch_id, ids = repository.reserve_records(conn, (), len(fresh))
        batch = copy_batch(fresh, copy, ids, batch_id, now)
        write_copy_batch(conn, batch, authority_id=authority_id, actor=actor, source=source)
        return batch_id
    batch_id = repository.new_batch(conn, "records", source, now, authority_id)
    # The ids are drawn first, so the batch's ids, its notices and its audit entry need no
    # query over the records table (which, mid-import, the planner's statistics lag behind).
    ids = repository.new_record_ids(conn, len(fresh))
    if is_sqlite(conn):
        _store_numbered_by_sqlite(conn, fresh, ids, batch_id, now)
    else:
        repository.insert_rows(
            conn,
            "records",
            ("id", *ROW_COLUMNS),
            [(record_id, *row) for record_id, row in zip(ids, fresh, strict=True)],
            constants={"batch_id": batch_id, "filed_at": now},
        )
        notify_records(conn, [(row[SUBJECT], i) for i, row in zip(ids, fresh, strict=True)], now)
    _audit_batch(
        conn, batch_id, ids, (row[HASH] for row in fresh), now, authority_id, actor, source
    )
    return batch_id


def _store_numbered_by_sqlite(
    conn: Any, fresh: list[tuple[Any, ...]], ids: list[int], batch_id: int, now: datetime
) -> None:
    """SQLite: insert the rows without their ids, which SQLite gives them (one more than the
    highest stored, the `INTEGER PRIMARY KEY` rule: `ids`, as SQLite has one writer), then
    their notices from the stored rows. No tuple per row is built here to carry an id or a
    notice: a batch of 100,000 rows costs the single writer about 0.1 s less."""
    stamp = now.isoformat(sep=" ")
    constants = {"batch_id": batch_id, "filed_at": stamp}
    repository.insert_rows(conn, "records", ROW_COLUMNS, fresh, constants=constants)
    newest = repository.newest_record_id(conn)
    if newest != ids[-1]:  # never seen: records are never deleted; the transaction rolls back
        raise RuntimeError(f"SQLite numbered the batch up to {newest}, not {ids[-1]}")
    notify_stored(conn, ids[0], ids[-1], now)


@dataclass(frozen=True, slots=True)
class CopyBatch:
    """PostgreSQL: a batch's new records and their notices as COPY text, under ids drawn
    beforehand; what storing it needs but the statements."""

    batch_id: int
    ids: list[int]
    records: str
    notices: str
    hashes: list[str]
    at: datetime


def copy_batch(
    rows: list[tuple[Any, ...]], lines: list[str], ids: list[int], batch_id: int, now: datetime
) -> CopyBatch:
    """The COPY text of new rows (`lines`, as the worker made them) with their ids, in order."""
    ids = ids[: len(rows)]
    tail = f"\t{batch_id}\t{now.isoformat()}\n"
    return CopyBatch(
        batch_id,
        ids,
        "".join(f"{i}\t{line}{tail}" for i, line in zip(ids, lines, strict=True)),
        filed_copy_text(((row[SUBJECT], i) for i, row in zip(ids, rows, strict=True)), now),
        [row[HASH] for row in rows],
        now,
    )


def write_copy_batch(
    conn: Any, batch: CopyBatch, *, authority_id: str, actor: str, source: str
) -> None:
    """Store a batch made by `copy_batch`: its batch row, records, notices and audit entry."""
    repository.new_batch(conn, "records", source, batch.at, authority_id, batch.batch_id)
    repository.copy_text(conn, "records", RECORD_COPY_COLUMNS, batch.records)
    repository.copy_text(conn, "notices", FILED_COLUMNS, batch.notices)
    _audit_batch(
        conn, batch.batch_id, batch.ids, batch.hashes, batch.at, authority_id, actor, source
    )


RECORD_COPY_COLUMNS = ("id", *ROW_COLUMNS, "batch_id", "filed_at")


def _audit_batch(
    conn: Any,
    batch_id: int,
    ids: list[int],
    hashes: Iterable[str],
    now: datetime,
    authority_id: str,
    actor: str,
    source: str,
) -> None:
    audit.append(
        conn,
        actor=actor,
        action="records.filed",
        at=now,
        digest=audit.rows_digest(hashes),
        payload={
            "batch_id": batch_id,
            "authority": authority_id,
            "source": source,
            "stored": len(ids),
            "first_record_id": ids[0],
            "last_record_id": ids[-1],
        },
    )


def batches_of(rows: Iterable[SourceRow], size: int) -> Iterator[list[SourceRow]]:
    it = iter(rows)
    while batch := list(islice(it, size)):
        yield batch


@dataclass
class _Optimism:
    """Whether a load stores its batches before looking their references up.

    A first load of a file finds none of its references stored, and the unique filing key
    refuses a batch that repeats one: the batch is then undone to its savepoint and stored
    the careful way, and so is every later batch of the run (a re-run, most likely).
    """

    on: bool


def store_into(
    conn: Any,
    prepared: Prepared,
    report: ImportReport,
    *,
    authority_id: str,
    actor: str,
    source: str,
    now: datetime,
    on_reject: Callable[[Reject], None],
    on_accept: Callable[[int, str, str], None],
    optimism: _Optimism | None = None,
) -> int:
    """Report a batch's refusals and store its new rows in the open transaction; returns
    how many rows it stored."""
    for reject in prepared.rejects:
        reject_row(report, on_reject, reject)
    if not prepared.rows:
        return 0
    if prepared.unknown is None:
        known = repository.registered_subjects(conn, (r[SUBJECT] for r in prepared.rows))
    else:
        known = {r[SUBJECT] for r in prepared.rows} - prepared.unknown
    store = partial(_store_rows, conn, prepared, authority_id, actor=actor, source=source, now=now)
    if optimism is not None and optimism.on:
        plan = plan_batch(prepared, known, {})
        if _stored_unless_filed(conn, plan[0], store):
            fresh = report_plan(prepared, plan, report, on_reject, on_accept)
            report.stored += len(fresh)
            report.batches += 1 if fresh else 0
            return len(fresh)
        optimism.on = False
    filed = repository.existing_references(conn, authority_id, (r[REF] for r in prepared.rows))
    fresh = classify(prepared, known, filed, report, on_reject, on_accept)
    if fresh:
        store(fresh)
        report.stored += len(fresh)
        report.batches += 1
    return len(fresh)


def _store_rows(
    conn: Any,
    prepared: Prepared,
    authority_id: str,
    fresh: list[int],
    *,
    actor: str,
    source: str,
    now: datetime,
) -> None:
    rows = [prepared.rows[i] for i in fresh]
    copy = None if prepared.copy is None else [prepared.copy[i] for i in fresh]
    store_batch(conn, authority_id, rows, source=source, actor=actor, now=now, copy=copy)


def _stored_unless_filed(conn: Any, fresh: list[int], store: Callable[[list[int]], None]) -> bool:
    """Store the batch's new rows (`fresh`, their positions) inside a savepoint; False (and
    nothing stored) when the unique filing key finds one of them already filed."""
    if not fresh:
        return True
    savepoint = conn.begin_nested()
    try:
        store(fresh)
    except (IntegrityError, psycopg.errors.UniqueViolation):
        savepoint.rollback()
        return False
    savepoint.commit()
    return True


def store_grouped(
    register: Register,
    batches: Iterator[Prepared],
    report: ImportReport,
    *,
    commit_rows: int,
    authority_id: str,
    actor: str,
    source: str,
    on_reject: Callable[[Reject], None],
    on_accept: Callable[[int, str, str], None] = ignore,
    optimistic: bool = False,
) -> None:
    """Store batches in file order, committing once at least `commit_rows` rows are in.

    Each batch keeps its own audit entry; a transaction holds several, so an index page
    touched by many batches is written once per commit rather than once per batch.
    `optimistic`: store before looking the references up (see `_Optimism`).
    """
    optimism = _Optimism(on=True) if optimistic else None
    done = False
    while not done:
        done = True
        with register.write() as conn:
            lock_register(conn, exclusive=False, authority_id=authority_id)
            stored = 0
            for prepared in batches:
                stored += store_into(
                    conn,
                    prepared,
                    report,
                    authority_id=authority_id,
                    actor=actor,
                    source=source,
                    now=register.clock.now(),
                    on_reject=on_reject,
                    on_accept=on_accept,
                    optimism=optimism,
                )
                if stored >= commit_rows:
                    done = False
                    break


def require_authority(policy: Policy, authority_id: str) -> None:
    if authority_id not in policy.authority_by_id:
        known = ", ".join(sorted(policy.authority_by_id)) or "none"
        raise ValidationError(
            f"authority {authority_id!r} is not declared in the active policy (known: {known})",
            [Problem("authority", f"unknown authority {authority_id!r}")],
        )
