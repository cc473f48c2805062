"""The preview's DuckDB snapshot: where it is kept, the transaction it is read in, and
keeping it current after a big load.

A preview brings the kept snapshot up to its read transaction: incrementally from the audit
entries after the snapshot's head, or by reading the scoring columns afresh when there is
no usable snapshot (12 s at 10M records on PostgreSQL, against 2 s for a current one).
`credo policy snapshot` brings it current on its own (`keep_snapshot`): run after a big
load, the first preview then does not pay for the fresh read. The import does not do it
itself: the read holds the scoring columns in memory (about 1.7 GB at 10M records), and an
import's memory stays bounded whatever the file's size.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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


def keep_snapshot(register: Register) -> str:
    """Bring the kept snapshot up to what is committed now; returns how ("full",
    "incremental" or "current"), or "" when there is nowhere to keep one or no DuckDB."""
    home = snapshot_home(register)
    if home is None or not preview_duckdb.available():
        return ""
    with preview_duckdb.opened(register.engine, home) as snap:
        for attempt in range(1, RETRIES + 1):
            with snapshot_transaction(register) as conn:
                try:
                    snap.refresh(register.engine, conn)
                except preview_duckdb.Moved:
                    if attempt == RETRIES:
                        raise
                    continue
                return snap.how
    return ""
