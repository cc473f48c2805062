"""Filing records: one at a time (API) or in bulk (CSV / JSON Lines), idempotent per reference."""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import partial
from itertools import islice
from typing import Any, BinaryIO

from sqlalchemy import select

from credo.domain.errors import Problem, ValidationError
from credo.domain.filing import RECORD_FIELDS, validate_record
from credo.domain.policy import Policy
from credo.domain.scoring import Standing, compute_standing
from credo.services.notices import notify, notify_records
from credo.services.register import Register
from credo.services.sources import RawChunk, SourceRow, parse_chunk, raw_text, read_chunks
from credo.store import audit, memberships, repository
from credo.store.db import is_sqlite
from credo.store.rescore import catch_up, lock_register
from credo.store.tables import records, subjects


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


# An insert-ready record row: the records columns but batch_id and filed_at,
# dates as ISO text (both SQLite and COPY take them). Index positions used below:
_REF, _SUBJECT, _HASH = 1, 3, 11
ROW_COLUMNS = (
    "authority_id", "reference", "version", "subject_id", "category", "decided_on",
    "occurred_on", "legal_basis", "summary", "amount", "evidence_uri", "row_hash", "ends_on",
    "revoked",
)  # fmt: skip


@dataclass
class Prepared:
    """One batch after validation: rows ready to store, and the rows refused."""

    rows: list[tuple[Any, ...]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    # Each row as a line of PostgreSQL COPY text (no id, batch or time yet), when asked for:
    # formatting in the validating worker spares the process that writes.
    copy: list[str] | None = None


def prepare_batch(
    batch: list[SourceRow],
    *,
    policy: Policy,
    authority_id: str,
    today: date,
    copy_text: bool = False,
) -> Prepared:
    """Validate, hash and date every row of a batch (pure: runs in a worker process too)."""
    out = Prepared(copy=[] if copy_text else None)
    categories = policy.category_by_id
    for row in batch:
        if row.fields is None:
            assert row.problem is not None
            out.rejects.append(Reject(row.line, [row.problem], row.raw))
            continue
        rec = validate_record(row.fields, authority_id=authority_id, policy=policy, today=today)
        if isinstance(rec, list):
            out.rejects.append(Reject(row.line, rec, raw_text(row)))
            continue
        ends = categories[rec.category].valid_for.add_to(rec.decided_on)
        out.rows.append(
            (
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
                ends.isoformat(),
                False,
            )
        )
        out.lines.append(row.line)
        if out.copy is not None:
            out.copy.append(repository.copy_line(out.rows[-1]))
    return out


def _row_text(row: tuple[Any, ...]) -> str:
    """A stored-to-be row as the file's fields, for the rejects file."""
    fields = (row[1], row[3], row[4], row[5], row[6], row[7], row[8], row[9], row[10])
    return ",".join("" if v is None else str(v) for v in fields)


def _classify(
    prepared: Prepared,
    known_subjects: set[str],
    filed: dict[str, str],
    report: ImportReport,
    on_reject: Callable[[Reject], None],
    on_accept: Callable[[int, str, str], None] = _ignore,
) -> list[int]:
    """Split validated rows into new ones (their positions), retries of stored ones, and
    conflicts."""
    fresh: list[int] = []
    for at, (row, line) in enumerate(zip(prepared.rows, prepared.lines, strict=True)):
        subject_id, reference, row_hash = row[_SUBJECT], row[_REF], row[_HASH]
        if subject_id not in known_subjects:
            problem = Problem("subject_id", f"subject {subject_id!r} is not registered")
            _reject(report, on_reject, Reject(line, [problem], _row_text(row)))
            continue
        previous = filed.get(reference)
        if previous is None:
            filed[reference] = row_hash
            fresh.append(at)
            on_accept(line, "stored", reference)
        elif previous == row_hash:
            report.duplicates += 1
            on_accept(line, "duplicate", reference)
        else:
            problem = Problem(
                "reference",
                f"{reference!r} is already filed by this authority with different content; "
                "a changed decision is a correction, not a new filing",
            )
            _reject(report, on_reject, Reject(line, [problem], _row_text(row)))
    return fresh


def _reject(report: ImportReport, on_reject: Callable[[Reject], None], reject: Reject) -> None:
    report.add_reject(reject)
    on_reject(reject)


def _store_batch(
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
    batch_id = repository.new_batch(conn, "records", source, now, authority_id)
    stamp = now.isoformat(sep=" ") if is_sqlite(conn) else now
    # The ids are drawn first, so the batch's ids, its notices and its audit entry need no
    # query over the records table (which, mid-import, the planner's statistics lag behind).
    ids = repository.new_record_ids(conn, len(fresh))
    if copy is not None and not is_sqlite(conn):
        tail = f"\t{batch_id}\t{now.isoformat()}\n"
        repository.copy_text(
            conn,
            "records",
            ("id", *ROW_COLUMNS, "batch_id", "filed_at"),
            "".join(f"{i}\t{line}{tail}" for i, line in zip(ids, copy, strict=True)),
        )
    else:
        repository.insert_rows(
            conn,
            "records",
            ("id", *ROW_COLUMNS),
            [(record_id, *row) for record_id, row in zip(ids, fresh, strict=True)],
            constants={"batch_id": batch_id, "filed_at": stamp},
        )
    notify_records(conn, [(row[_SUBJECT], i) for i, row in zip(ids, fresh, strict=True)], now)
    count, first, last = len(ids), ids[0], ids[-1]
    audit.append(
        conn,
        actor=actor,
        action="records.filed",
        at=now,
        digest=audit.rows_digest(row[_HASH] for row in fresh),
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


def _store_into(
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
) -> int:
    """Report a batch's refusals and store its new rows in the open transaction; returns
    how many rows it stored."""
    for reject in prepared.rejects:
        _reject(report, on_reject, reject)
    if not prepared.rows:
        return 0
    known = set(repository.existing_subjects(conn, (r[_SUBJECT] for r in prepared.rows)))
    filed = repository.existing_references(conn, authority_id, (r[_REF] for r in prepared.rows))
    fresh = _classify(prepared, known, filed, report, on_reject, on_accept)
    if fresh:
        rows = [prepared.rows[i] for i in fresh]
        copy = None if prepared.copy is None else [prepared.copy[i] for i in fresh]
        _store_batch(conn, authority_id, rows, source=source, actor=actor, now=now, copy=copy)
        report.stored += len(fresh)
        report.batches += 1
    return len(fresh)


def _store_grouped(
    register: Register,
    batches: Iterator[Prepared],
    report: ImportReport,
    *,
    commit_rows: int,
    authority_id: str,
    actor: str,
    source: str,
    on_reject: Callable[[Reject], None],
    on_accept: Callable[[int, str, str], None] = _ignore,
) -> None:
    """Store batches in file order, committing once at least `commit_rows` rows are in.

    Each batch keeps its own audit entry; a transaction holds several, so an index page
    touched by many batches is written once per commit rather than once per batch.
    """
    done = False
    while not done:
        done = True
        with register.write() as conn:
            lock_register(conn, exclusive=False, authority_id=authority_id)
            stored = 0
            for prepared in batches:
                stored += _store_into(
                    conn,
                    prepared,
                    report,
                    authority_id=authority_id,
                    actor=actor,
                    source=source,
                    now=register.clock.now(),
                    on_reject=on_reject,
                    on_accept=on_accept,
                )
                if stored >= commit_rows:
                    done = False
                    break


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
    """Validate every row, store the good ones (one transaction per batch that stores any),
    then rescore.

    Re-running the same rows stores nothing twice: a reference the authority already filed
    with the same content is counted as a duplicate; with other content it is refused.
    """
    with register.read() as conn:
        _, policy = register.active_policy(conn)
    _require_authority(policy, authority_id)
    today = register.clock.today()
    report = ImportReport()

    def prepared() -> Iterator[Prepared]:
        for batch in _batches(rows, batch_size):
            yield prepare_batch(
                batch,
                policy=policy,
                authority_id=authority_id,
                today=today,
                copy_text=not is_sqlite(register.engine),
            )
            on_batch(report)  # resumed once the batch is stored

    _store_grouped(
        register,
        prepared(),
        report,
        commit_rows=1,
        authority_id=authority_id,
        actor=actor,
        source=source,
        on_reject=on_reject,
        on_accept=on_accept,
    )
    return _finish(register, report)


def _finish(register: Register, report: ImportReport) -> ImportReport:
    """Refresh the planner's statistics after a big load, then bring standings up to date.

    The rescore runs also when this run stored nothing: a run killed during its rescore left
    records that the stored standings do not reflect yet, and re-running must catch them up.
    """
    if report.stored >= repository.BIG_LOAD:
        with register.write() as conn:
            repository.refresh_statistics(conn, "records", "notices")
    report.rescored = rescore_register_pending(register)
    return report


_worker: dict[str, Any] = {}


def _worker_init(policy_text: str, authority_id: str, today: date, copy_text: bool) -> None:
    from credo.domain.policy_load import load_policy

    _worker.update(
        policy=load_policy(policy_text),
        authority_id=authority_id,
        today=today,
        copy_text=copy_text,
    )


def _worker_prepare(raw: RawChunk) -> Prepared:
    return prepare_batch(
        parse_chunk(raw),
        policy=_worker["policy"],
        authority_id=_worker["authority_id"],
        today=_worker["today"],
        copy_text=_worker["copy_text"],
    )


def import_file(
    register: Register,
    stream: BinaryIO,
    fmt: str,
    *,
    authority_id: str,
    actor: str,
    source: str,
    chunk_bytes: int = 4 << 20,
    commit_rows: int = 100_000,
    workers: int = 1,
    on_bytes: Callable[[int], None] | None = None,
    on_reject: Callable[[Reject], None] = lambda r: None,
) -> ImportReport:
    """`credo import`: cut a file into chunks of whole rows (about `chunk_bytes` each) while
    `workers` processes parse and validate them; the chunks are stored in file order, one
    audit entry each, in transactions of at least `commit_rows` rows (one per chunk when a
    chunk is bigger)."""
    with register.read() as conn:
        _, policy = register.active_policy(conn)
        _, policy_text = repository.active_policy_row(conn)
    _require_authority(policy, authority_id)
    today = register.clock.today()
    report = ImportReport()
    raw = read_chunks(stream, fmt, RECORD_FIELDS, chunk_bytes, on_bytes)
    store = partial(
        _store_grouped,
        register,
        report=report,
        commit_rows=commit_rows,
        authority_id=authority_id,
        actor=actor,
        source=source,
        on_reject=on_reject,
    )
    if workers < 1:
        store(
            prepare_batch(
                parse_chunk(batch),
                policy=policy,
                authority_id=authority_id,
                today=today,
                copy_text=not is_sqlite(register.engine),
            )
            for batch in raw
        )
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            workers,
            mp_context=context,
            initializer=_worker_init,
            initargs=(policy_text, authority_id, today, not is_sqlite(register.engine)),
        ) as pool:
            store(_in_order(pool, raw, workers))
    return _finish(register, report)


def _in_order(
    pool: ProcessPoolExecutor, raw: Iterator[RawChunk], workers: int
) -> Iterator[Prepared]:
    """Chunks prepared by the pool, in file order, with at most `workers` + 1 in flight."""
    in_flight: deque[Future[Prepared]] = deque()
    for batch in raw:
        in_flight.append(pool.submit(_worker_prepare, batch))
        if len(in_flight) > workers:
            yield in_flight.popleft().result()
    while in_flight:
        yield in_flight.popleft().result()


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
    prepared = prepare_batch(
        [SourceRow(1, fields)], policy=policy, authority_id=authority_id, today=today
    )
    if prepared.rejects:
        raise ValidationError("the record was refused", prepared.rejects[0].problems)
    row = prepared.rows[0]
    subject_id, reference = row[_SUBJECT], row[_REF]
    now = register.clock.now()
    with register.write() as conn:
        lock_register(conn, exclusive=False, authority_id=authority_id)
        lock_subject(conn, subject_id)
        version_id, policy = register.active_policy(conn)
        report = ImportReport()
        rejects: list[Reject] = []
        known = set(repository.existing_subjects(conn, [subject_id]))
        filed = repository.existing_references(conn, authority_id, [reference])
        fresh = _classify(prepared, known, filed, report, rejects.append)
        if rejects:
            raise ValidationError("the record was refused", rejects[0].problems)
        if fresh:
            _store_batch(conn, authority_id, prepared.rows, source=source, actor=actor, now=now)
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


def _require_authority(policy: Policy, authority_id: str) -> None:
    if authority_id not in policy.authority_by_id:
        known = ", ".join(sorted(policy.authority_by_id)) or "none"
        raise ValidationError(
            f"authority {authority_id!r} is not declared in the active policy (known: {known})",
            [Problem("authority", f"unknown authority {authority_id!r}")],
        )
