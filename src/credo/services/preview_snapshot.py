"""The preview's DuckDB snapshot: where it is kept, the transaction it is read in, and
keeping it current during and after a big load.

A preview brings the kept snapshot up to its read transaction: incrementally from the audit
entries after the snapshot's head, or by reading the scoring columns afresh when there is
no usable snapshot (12 s at 10M records on PostgreSQL, against 2 s for a current one).

`credo import` keeps it current as it goes (`SnapshotKeeper`): a thread catches the
snapshot up with what the import has committed every few seconds, incrementally, reading
the new records as a stream, and the import ends with one last catch-up. So the first
preview after a load reads no fresh copy, and the import's memory stays bounded: it never
reads the register afresh unless the register is small. `credo policy snapshot` brings the
snapshot current on its own (`keep_snapshot`), reading afresh whatever the size.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection

from credo.services.register import Register
from credo.store import preview_duckdb, preview_sql

RETRIES = 3  # fresh snapshot reads overtaken by a write before the preview gives up


def snapshot_home(register: Register) -> Path | None:
    """Where the DuckDB snapshot file is kept: CREDO_HOME, else beside the SQLite file,
    else nowhere (in memory, for this process only)."""
    if register.home is not None:
        return register.home
    if register.engine.dialect.name == "sqlite" and register.engine.url.database:
        database = register.engine.url.database
        if database != ":memory:":
            return Path(database).parent
    return None


@contextmanager
def snapshot_transaction(register: Register) -> Iterator[Connection]:
    """One read transaction that sees one snapshot, rolled back: nothing is kept."""
    with register.engine.connect() as conn:
        if conn.dialect.name != "sqlite":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        transaction = conn.begin()
        try:
            yield conn
        finally:
            if transaction.is_active:
                preview_sql.drop(conn)
            transaction.rollback()


def keep_snapshot(
    register: Register,
    *,
    afresh_up_to: int | None = None,
    settings: dict[str, Any] | None = None,
    score_on: date | None = None,
) -> str:
    """Bring the kept snapshot up to what is committed now; returns how ("full",
    "incremental" or "current"), or "" when there is nowhere to keep one, no DuckDB, or
    (with `afresh_up_to`) only a fresh read of more records than that would do it. With
    `score_on`, the active policy's scoring as of that day is kept too: a preview on that
    day then scores only the candidate."""
    home = snapshot_home(register)
    if home is None or not preview_duckdb.available():
        return ""
    with preview_duckdb.opened(register.engine, home, settings=settings) as snap:
        for attempt in range(1, RETRIES + 1):
            with snapshot_transaction(register) as conn:
                try:
                    snap.refresh(register.engine, conn, afresh_up_to)
                except preview_duckdb.Moved:
                    if attempt == RETRIES:
                        raise
                    continue
                if score_on is not None and snap.how:
                    _, active = register.active_policy(conn)
                    snap.score_active(active, score_on)
                return snap.how
    return ""


# A load keeps the snapshot in this much memory, on one thread: the import's own work and
# its memory bound come first.
KEEPER_SETTINGS = {"memory_limit": "96MB", "threads": 1}
# The last catch-up, with the active policy's scoring, runs when the load has ended: both
# cores, the same memory.
FINISH_SETTINGS = {"memory_limit": "96MB", "threads": 2}
# A register of at most this many records is read afresh when its snapshot cannot be caught
# up (about 20 MB of Arrow); a bigger one is left for the next preview.
SMALL_REGISTER = 200_000


class SnapshotKeeper:
    """Keeps the preview snapshot current while a long write runs.

    `start()`, before the write's first transaction, starts a process of its own: DuckDB
    and the Arrow readers stay out of the writing process and its memory bound, and run
    beside it. The process catches the snapshot up with what is committed at once, then at
    most every `interval` seconds and never more than a third of the time. `finish(day)`,
    after the write, has it catch up once more and keep the active policy's scoring as of
    `day`, and says how it went. `with` the keeper around the write: a write that fails
    stops the process without a last catch-up.

    The snapshot is a cache: a catch-up that fails is reported by `finish()` and never fails
    the write. Catch-ups are incremental; when the snapshot cannot be caught up (none, or
    another history) a fresh read is made only of a small register, else nothing is done
    and the next preview reads afresh.
    """

    def __init__(self, register: Register, interval: float = 10.0) -> None:
        self._register = register
        self._interval = interval
        self._process: Any = None  # multiprocessing.Process
        self._pipe: Any = None  # our end of the pipe to it

    def start(self) -> None:
        """Start following (again: nothing), where a snapshot can be kept at all."""
        home = snapshot_home(self._register)
        if self._process is not None or home is None or not preview_duckdb.available():
            return
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self._pipe, theirs = context.Pipe()
        url = self._register.engine.url.render_as_string(hide_password=False)
        self._process = context.Process(
            target=_keep_following,
            args=(url, str(home), self._interval, SMALL_REGISTER, theirs),
            name="credo-snapshot",
            daemon=True,
        )
        self._process.start()
        theirs.close()

    def __enter__(self) -> SnapshotKeeper:
        return self

    def __exit__(self, kind: object, *exc: object) -> None:
        if kind is not None:
            self._end(None)

    def finish(self, day: date) -> str:
        """After the write: the last catch-up, and the active policy's scoring as of `day`;
        how the snapshot was kept ("" when it was not followed), for the write's report."""
        return self._end(day)

    def _end(self, day: date | None) -> str:
        process, pipe = self._process, self._pipe
        if process is None:
            return ""
        self._process = self._pipe = None
        outcome = ""
        try:
            pipe.send(day)
            if day is not None:
                outcome = str(pipe.recv())
        except (EOFError, OSError) as exc:  # the process is gone
            outcome = f"not kept (the snapshot process ended: {type(exc).__name__})"
        finally:
            pipe.close()
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
                process.join()
        return outcome


def _keep_following(url: str, home: str, interval: float, small: int, pipe: Any) -> None:
    """The keeper's process: catch-ups until told to finish (a day: one more catch-up with
    the scoring of that day, then the outcome sent back) or to stop (None); a register of
    at most `small` records may be read afresh."""
    from credo.clock import SystemClock
    from credo.store.db import make_engine

    register = Register(engine=make_engine(url), clock=SystemClock(), home=Path(home))
    how, error, kept = "", "", 0

    def keep(**options: Any) -> None:
        nonlocal how, error, kept
        try:
            how = keep_snapshot(register, afresh_up_to=small, **options)
            kept += 1
        except Exception as exc:  # a cache: the write goes on without it
            error = f"{type(exc).__name__}: {exc}"

    pause: float | None = 0.0
    try:
        while not pipe.poll(pause):
            started = time.monotonic()
            keep(settings=KEEPER_SETTINGS)
            following = how and not error
            pause = max(interval, 2 * (time.monotonic() - started)) if following else None
        day = pipe.recv()
        if day is None:
            return
        if not error and (how or not kept):
            keep(settings=FINISH_SETTINGS, score_on=day)
        if error:
            pipe.send(f"not kept ({error})")
        elif not how:
            pipe.send("left to the next preview (none to catch up, and a big register)")
        else:
            pipe.send("current")
    except (EOFError, OSError):  # the writing process is gone
        return
    finally:
        register.engine.dispose()
