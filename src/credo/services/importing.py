"""Bulk import of records (`credo import`, the batch API, the demo): rows validated in
worker processes, stored in file order in grouped transactions, then one rescore."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import stat
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any, BinaryIO

from credo.domain.filing import RECORD_FIELDS
from credo.domain.policy import Policy
from credo.services.import_writer import store_pipelined
from credo.services.preview_snapshot import SnapshotKeeper
from credo.services.record_batches import (
    SUBJECT,
    ImportReport,
    Prepared,
    Reject,
    batches_of,
    ignore,
    prepare_batch,
    prepare_csv_chunk,
    require_authority,
    store_grouped,
)
from credo.services.register import Register
from credo.services.sources import RawChunk, SourceRow, parse_chunk, read_chunks
from credo.store import repository
from credo.store.db import is_sqlite
from credo.store.rescore import catch_up, lock_register

__all__ = ["ImportReport", "Reject", "import_file", "import_records", "rescore_register_pending"]


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
    on_accept: Callable[[int, str, str], None] = ignore,
) -> ImportReport:
    """Validate every row, store the good ones (one transaction per batch that stores any),
    then rescore.

    Re-running the same rows stores nothing twice: a reference the authority already filed
    with the same content is counted as a duplicate; with other content it is refused.
    """
    with register.read() as conn:
        _, policy = register.active_policy(conn)
    require_authority(policy, authority_id)
    today = register.clock.today()
    report = ImportReport()

    def prepared() -> Iterator[Prepared]:
        for batch in batches_of(rows, batch_size):
            yield prepare_batch(
                batch,
                policy=policy,
                authority_id=authority_id,
                today=today,
                copy_text=not is_sqlite(register.engine),
            )
            on_batch(report)  # resumed once the batch is stored

    store_grouped(
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


# An import of a file this big or bigger (about 40,000 rows of a typical file) keeps the
# policy preview's snapshot current: the first preview after a load reads no copy. On
# PostgreSQL the keeper catches up every few seconds as the import stores. On SQLite that
# slowed the single writer (10M records: 544 s against 431 s), so there it catches up only
# beside the closing rescore, which leaves the other core free.
KEEP_SNAPSHOT_FROM = 8 << 20
KEEP_EVERY = 10.0  # seconds between the keeper's catch-ups on PostgreSQL

_worker: dict[str, Any] = {}


def _worker_init(
    policy_text: str, authority_id: str, today: date, copy_text: bool, sqlite_path: str | None
) -> None:
    from credo.domain.policy_load import load_policy

    _worker.update(
        policy=load_policy(policy_text),
        authority_id=authority_id,
        today=today,
        copy_text=copy_text,
    )
    if sqlite_path is not None:  # the worker checks its chunks' subjects, read-only
        uri = f"{Path(sqlite_path).resolve().as_uri()}?mode=ro"
        _worker["subjects"] = sqlite3.connect(uri, uri=True)


def _worker_prepare(raw: RawChunk) -> Prepared:
    prepared = prepare_chunk(
        raw,
        policy=_worker["policy"],
        authority_id=_worker["authority_id"],
        today=_worker["today"],
        copy_text=_worker["copy_text"],
    )
    subjects = _worker.get("subjects")
    if subjects is not None and prepared.rows:
        ids = {row[SUBJECT] for row in prepared.rows}
        prepared.unknown = repository.unregistered_subjects(subjects, ids)
    return prepared


def prepare_chunk(
    raw: RawChunk, *, policy: Policy, authority_id: str, today: date, copy_text: bool
) -> Prepared:
    """A chunk of the file parsed and validated."""
    if raw.fmt == "csv":
        return prepare_csv_chunk(
            raw, policy=policy, authority_id=authority_id, today=today, copy_text=copy_text
        )
    return prepare_batch(
        parse_chunk(raw), policy=policy, authority_id=authority_id, today=today, copy_text=copy_text
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
    require_authority(policy, authority_id)
    today = register.clock.today()
    report = ImportReport()
    raw = read_chunks(stream, fmt, RECORD_FIELDS, chunk_bytes, on_bytes)
    options: dict[str, Any] = {
        "report": report,
        "commit_rows": commit_rows,
        "authority_id": authority_id,
        "actor": actor,
        "source": source,
        "on_reject": on_reject,
    }

    sqlite = is_sqlite(register.engine)

    def store(batches: Iterator[Prepared]) -> None:
        if sqlite:
            store_grouped(register, batches, optimistic=True, **options)
        else:  # the statements of one batch overlap the preparation of the next
            store_pipelined(register, batches, **options)

    with SnapshotKeeper(register, None if sqlite else KEEP_EVERY) as keeper:
        if _size(stream) >= KEEP_SNAPSHOT_FROM:
            keeper.start()  # before the first write: see SnapshotKeeper
        if workers < 1:
            copy_text = not sqlite
            store(
                prepare_chunk(
                    batch,
                    policy=policy,
                    authority_id=authority_id,
                    today=today,
                    copy_text=copy_text,
                )
                for batch in raw
            )
        else:
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(
                workers,
                mp_context=context,
                initializer=_worker_init,
                initargs=(policy_text, authority_id, today, not sqlite, _subjects_file(register)),
            ) as pool:
                store(_in_order(pool, raw, workers))
        keeper.catch_up()  # what was stored, read while the rescore below runs
        _finish(register, report)
        report.snapshot = keeper.finish(register.clock.today())
    return report


def _size(stream: BinaryIO) -> int:
    """The size of the file behind `stream`, or 0 when it is not a regular file."""
    try:
        status = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):  # io.BytesIO, a closed or unusual stream
        return 0
    return status.st_size if stat.S_ISREG(status.st_mode) else 0


def _subjects_file(register: Register) -> str | None:
    """SQLite: the database file, which the workers read the subjects from (a check off the
    writing process, which SQLite's single writer makes the import's critical path)."""
    url = register.engine.url
    if not is_sqlite(register.engine) or url.database in (None, "", ":memory:"):
        return None
    return url.database


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
