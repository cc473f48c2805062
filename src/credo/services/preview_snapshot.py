"""The preview's DuckDB snapshot: where it is kept, the transaction it is read in, and
keeping it current during and after a big load.

A preview brings the kept snapshot up to its read transaction: incrementally from the audit
entries after the snapshot's head, or by reading the scoring columns afresh when there is
no usable snapshot (12 s at 10M records on PostgreSQL, against 2 s for a current one).

`credo import` of a big file keeps it current (`SnapshotKeeper`): a process of its own
catches the snapshot up with what the import has committed, incrementally, reading the new
records as a stream, and once more at the end with the active policy's scoring for the
day. On PostgreSQL it does so every few seconds while the import stores; on SQLite, whose
single writer is the import's critical path, only while the import's closing rescore runs
(see credo.services.importing). So the first preview after a load reads no fresh copy and
scores only the candidate, and the import's memory stays bounded: the register is never
read afresh for it unless it is small. `credo policy snapshot` brings the snapshot current
on its own (`keep_snapshot`), reading afresh whatever the size.
"""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import sys
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
                    import duckdb

                    # Out of the memory it was given, it is only a head start lost: the
                    # next preview scores the day itself.
                    with contextlib.suppress(duckdb.Error):
                        snap.score_active(active, score_on)
                return snap.how
    return ""


# A load keeps the snapshot in this much memory, on one thread: the import's own work and
# its memory bound come first.
KEEPER_SETTINGS = {"memory_limit": "32MB", "threads": 1}
# The last catch-up, with the active policy's scoring, runs when the load has ended: both
# cores, and the memory the scoring of 10M records needs (with 48 MB it ran out; 64 MB
# scores them as fast as 96 MB did, in 2.0 s, at a peak RSS of 195 MB instead of 227).
FINISH_SETTINGS = {"memory_limit": "64MB", "threads": 2}
# A register of at most this many records is read afresh when its snapshot cannot be caught
# up (about 20 MB of Arrow); a bigger one is left for the next preview.
SMALL_REGISTER = 200_000


class SnapshotKeeper:
    """Keeps the preview snapshot current while a long write runs.

    `start()`, before the write's first transaction, starts a process of its own (this
    module run with `python -m`, so that it imports only what keeping the snapshot needs):
    DuckDB and the Arrow readers stay out of the writing process and its memory bound, and
    run beside it. The process catches the snapshot up with what is committed at once,
    then at most every `interval` seconds and never more than a third of the time (with no
    interval, only when told). `catch_up()` has it catch up now, without waiting for it.
    `finish(day)`, after the write, has it catch up once more and keep the active policy's
    scoring as of `day`, and says how it went. `with` the keeper around the write: a write
    that fails stops the process without a last catch-up.

    The snapshot is a cache: a catch-up that fails is reported by `finish()` and never fails
    the write. Catch-ups are incremental; when the snapshot cannot be caught up (none, or
    another history) a fresh read is made only of a small register, else nothing is done
    and the next preview reads afresh.
    """

    def __init__(self, register: Register, interval: float | None = 10.0) -> None:
        self._register = register
        self._interval = interval
        self._child: subprocess.Popen[str] | None = None

    def start(self) -> None:
        """Start following (again: nothing), where a snapshot can be kept at all."""
        home = snapshot_home(self._register)
        if self._child is not None or home is None or not preview_duckdb.available():
            return
        url = self._register.engine.url.render_as_string(hide_password=False)
        self._child = subprocess.Popen(
            [
                sys.executable,
                "-m",
                __name__,
                str(home),
                str(self._interval or 0),
                str(SMALL_REGISTER),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        _tell(self._child, url)  # on its input, not its command line: it may hold a password

    def __enter__(self) -> SnapshotKeeper:
        return self

    def __exit__(self, kind: object, *exc: object) -> None:
        if kind is not None:
            self._end(None)

    def catch_up(self) -> None:
        """Have the process catch up with what is committed now (it runs on by itself)."""
        if self._child is not None:
            with contextlib.suppress(OSError):  # gone: finish() says so
                _tell(self._child, CATCH_UP)

    def finish(self, day: date) -> str:
        """After the write: the last catch-up, and the active policy's scoring as of `day`;
        how the snapshot was kept ("" when it was not followed), for the write's report."""
        return self._end(day)

    def _end(self, day: date | None) -> str:
        child, self._child = self._child, None
        if child is None:
            return ""
        assert child.stdin is not None and child.stdout is not None
        outcome = ""
        try:
            if day is not None:
                _tell(child, day.isoformat())
                outcome = child.stdout.readline().strip() or "not kept (the snapshot process ended)"
        except OSError as exc:  # the process is gone
            outcome = f"not kept (the snapshot process ended: {type(exc).__name__})"
        finally:
            for pipe in (child.stdin, child.stdout):
                with contextlib.suppress(OSError):
                    pipe.close()
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        return outcome


def one_line(exc: BaseException) -> str:
    """An error as the one line the keeper answers with (DuckDB's messages go on for
    lines of advice; the importing process reads one line, then closes the pipe)."""
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


CATCH_UP = "now"  # the line that asks the keeper for a catch-up before its next one


def _tell(child: subprocess.Popen[str], line: str) -> None:
    assert child.stdin is not None
    child.stdin.write(line + "\n")
    child.stdin.flush()


def _line() -> str:
    """One line of the standard input, read unbuffered (so that select() sees the next)."""
    data = b""
    while not data.endswith(b"\n"):
        byte = os.read(0, 1)
        if not byte:
            break
        data += byte
    return data.decode().strip()


def _keep_following(home: str, interval: float, small: int) -> None:
    """The keeper's process: the register's URL on the first line of its input, then
    catch-ups (every `interval` seconds; when 0, only at once and when asked by a line
    `now`) until a line with a day (one more catch-up with the scoring of that day, the
    outcome written back) or the end of the input (stop)."""
    from credo.clock import SystemClock
    from credo.store.db import make_engine

    url = _line()
    register = Register(engine=make_engine(url), clock=SystemClock(), home=Path(home))
    how, error, kept = "", "", 0

    def keep(**options: Any) -> None:
        nonlocal how, error, kept
        try:
            how = keep_snapshot(register, afresh_up_to=small, **options)
            kept += 1
        except Exception as exc:  # a cache: the write goes on without it
            error = one_line(exc)

    pause: float | None = 0.0
    try:
        while True:
            if select.select([0], [], [], pause)[0]:
                day = _line()
                if day != CATCH_UP:
                    break
            started = time.monotonic()
            keep(settings=KEEPER_SETTINGS)
            following = how and not error and interval > 0
            pause = max(interval, 2 * (time.monotonic() - started)) if following else None
        if not day:
            return
        if not error and (how or not kept):
            keep(settings=FINISH_SETTINGS, score_on=date.fromisoformat(day))
        if error:
            print(f"not kept ({error})", flush=True)
        elif not how:
            print("left to the next preview (none to catch up, and a big register)", flush=True)
        else:
            print("current", flush=True)
    finally:
        register.engine.dispose()


if __name__ == "__main__":
    _keep_following(sys.argv[1], float(sys.argv[2]), int(sys.argv[3]))
