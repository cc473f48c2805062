"""`credo import` on PostgreSQL: the statements of each batch run in a writer thread, on a
connection of its own, while the importing thread prepares the next batch.

The importing process is on the server's critical path: while it formats a batch, the
server waits, and while the server stores one, the process waited. Here the writer thread
stores batch k (its batch row, COPY of records and notices, audit entry) while the
importing thread checks batch k+1's subjects and draws its ids on a second connection, plans
it and formats its COPY text. The outcome is the same as `store_grouped` with `optimistic`:
the same rows, the same audit entries, refusals reported in the same order.

Ids are drawn from the sequences outside the writer's transaction. A rescore reads the
highest committed record id as its watermark, so it must not run while drawn ids are not
yet committed: the writer's connection holds the register lock, shared, for its whole
session (rescores take it alone; other filers share it).

When the unique filing key refuses a batch (part of the file was filed before), the writer
undoes that batch to its savepoint and skips those queued after it; they and the rest of the
run are then stored the careful way (references looked up first), in the writer's thread.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

import psycopg
from sqlalchemy.engine import Connection, RootTransaction
from sqlalchemy.exc import IntegrityError

from credo.services.record_batches import (
    SUBJECT,
    CopyBatch,
    ImportReport,
    Plan,
    Prepared,
    Reject,
    copy_batch,
    ignore,
    plan_batch,
    reject_row,
    report_plan,
    store_into,
    write_copy_batch,
)
from credo.services.register import Register
from credo.store import repository
from credo.store.rescore import hold_register_shared, lock_register

QUEUED = 2  # batches handed to the writer and not yet settled, at most


@dataclass(frozen=True, slots=True)
class _Job:
    """A batch planned before its references were looked up, and its COPY text (None when
    it stores nothing)."""

    prepared: Prepared
    plan: Plan
    batch: CopyBatch | None


class _Writer:
    """The import's writing connection, used only from its own thread: batches stored in
    the order given, in transactions of at least `commit_rows` rows."""

    def __init__(self, register: Register, authority_id: str, commit_rows: int) -> None:
        self._register = register
        self._authority_id = authority_id
        self._commit_rows = commit_rows
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="credo-import-writer")
        self._conn: Connection | None = None
        self._txn: RootTransaction | None = None
        self._rows = 0
        self._refused = False  # the filing key refused a batch: later ones are skipped

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future[Any]:
        return self._thread.submit(fn, *args, **kwargs)

    def begin(self) -> None:
        """Open the connection and hold the register lock for its session."""
        conn = self._register.engine.connect()
        conn.execution_options(credo_write=True)
        self._conn = conn
        hold_register_shared(conn, True)
        conn.commit()

    def _transaction(self) -> Connection:
        assert self._conn is not None
        if self._txn is None:
            self._txn = self._conn.begin()
            lock_register(self._conn, exclusive=False, authority_id=self._authority_id)
        return self._conn

    def _stored(self, rows: int) -> None:
        self._rows += rows
        if self._rows >= self._commit_rows and self._txn is not None:
            self._txn.commit()
            self._txn, self._rows = None, 0

    def write(self, job: _Job, actor: str, source: str) -> bool | None:
        """Store a planned batch inside a savepoint: True when stored (or nothing to store),
        False when the filing key refused it, None when skipped after a refusal."""
        if self._refused:
            return None
        if job.batch is None:
            return True
        conn = self._transaction()
        savepoint = conn.begin_nested()
        try:
            write_copy_batch(
                conn, job.batch, authority_id=self._authority_id, actor=actor, source=source
            )
        except (IntegrityError, psycopg.errors.UniqueViolation):
            savepoint.rollback()
            self._refused = True
            return False
        savepoint.commit()
        self._stored(len(job.batch.ids))
        return True

    def store_carefully(self, prepared: Prepared, report: ImportReport, **options: Any) -> None:
        """Store a batch the careful way (`store_into`): references looked up first."""
        self._stored(store_into(self._transaction(), prepared, report, **options))

    def end(self, failed: bool) -> None:
        """Commit (or, `failed`, roll back) the open transaction and give the lock back."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if self._txn is not None:
                (self._txn.rollback if failed else self._txn.commit)()
            hold_register_shared(conn, False)
            conn.commit()
        except Exception:
            conn.invalidate()  # the session, and the lock with it, ends with the connection
            if not failed:
                raise
        finally:
            conn.close()

    def close(self) -> None:
        self._thread.shutdown()


def store_pipelined(
    register: Register,
    batches: Iterator[Prepared],
    report: ImportReport,
    *,
    commit_rows: int,
    authority_id: str,
    actor: str,
    source: str,
    on_reject: Callable[[Reject], None],
) -> None:
    """Store batches in file order as `store_grouped(..., optimistic=True)` does, with each
    batch's statements overlapping the next batch's preparation (PostgreSQL only)."""
    writer = _Writer(register, authority_id, commit_rows)
    options = {"authority_id": authority_id, "actor": actor, "source": source}

    def carefully(prepared: Prepared) -> None:
        store = partial(writer.store_carefully, prepared, report, on_reject=on_reject, **options)
        writer.submit(store, now=register.clock.now(), on_accept=ignore).result()

    failed = True
    try:
        writer.submit(writer.begin).result()
        with register.engine.connect() as drawing:
            drawing.execution_options(isolation_level="AUTOCOMMIT")
            queued: deque[tuple[_Job, Future[bool | None]]] = deque()
            refused = False
            for prepared in batches:
                if refused:
                    carefully(prepared)
                    continue
                job = _planned(drawing, prepared, register.clock.now())
                queued.append((job, writer.submit(writer.write, job, actor, source)))
                while len(queued) >= QUEUED or (queued and refused):
                    job, outcome = queued.popleft()
                    if outcome.result():
                        _report(job, report, on_reject)
                    else:  # refused, or skipped after a refusal
                        refused = True
                        carefully(job.prepared)
            for job, outcome in queued:
                if outcome.result():
                    _report(job, report, on_reject)
                else:
                    carefully(job.prepared)
        failed = False
    finally:
        try:
            writer.submit(writer.end, failed).result()
        finally:
            writer.close()


def _planned(drawing: Connection, prepared: Prepared, now: datetime) -> _Job:
    """Check a batch's subjects, draw its ids, plan it as if none of its references were
    filed, and format what it stores."""
    rows = prepared.rows
    if not rows:
        return _Job(prepared, ([], []), None)
    subjects = {row[SUBJECT] for row in rows}
    unknown, batch_id, ids = repository.reserve_records(drawing, subjects, len(rows))
    plan = plan_batch(prepared, subjects - unknown, {})
    fresh = plan[0]
    if not fresh:
        return _Job(prepared, plan, None)
    assert prepared.copy is not None, "the pipelined import stores COPY text"
    new = [rows[i] for i in fresh]
    lines = [prepared.copy[i] for i in fresh]
    return _Job(prepared, plan, copy_batch(new, lines, ids, batch_id, now))


def _report(job: _Job, report: ImportReport, on_reject: Callable[[Reject], None]) -> None:
    """Count and report a stored batch's rows, as `store_into` does."""
    for reject in job.prepared.rejects:
        reject_row(report, on_reject, reject)
    fresh = report_plan(job.prepared, job.plan, report, on_reject, ignore)
    report.stored += len(fresh)
    report.batches += 1 if fresh else 0
