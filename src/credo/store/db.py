"""Engines for SQLite and PostgreSQL, and the schema upgrade the app runs itself."""

from __future__ import annotations

import sqlite3
from datetime import date
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection

PG_CONNECT_TIMEOUT = 5  # seconds to open a PostgreSQL connection
PG_POOL_TIMEOUT = 10  # seconds to wait for a pooled connection before a 503


def make_engine(url: str) -> Engine:
    """An engine tuned for the register: WAL SQLite with foreign keys, or PostgreSQL."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "connect", _sqlite_autocommit)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    # A restarted server leaves dead connections in the pool: pre-ping replaces them, so the
    # service recovers without a restart. While the server is down, connecting and waiting
    # for a pooled connection give up quickly and the API answers 503 (credo.api.errors).
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=10,
        pool_timeout=PG_POOL_TIMEOUT,
        connect_args={"connect_timeout": PG_CONNECT_TIMEOUT},
    )


def _sqlite_pragmas(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA cache_size=-65536")  # 64 MB: bounds the import's memory
    # Checkpoint every 64 MB of log rather than every 4 MB: an import rewrites the same index
    # pages in every transaction, and each checkpoint copied them all to the database again.
    cursor.execute("PRAGMA wal_autocheckpoint=16384")
    cursor.execute("PRAGMA journal_size_limit=67108864")  # and the log shrinks back after
    cursor.close()


def is_sqlite(engine_or_conn: Engine | Connection) -> bool:
    """Whether this is the embedded SQLite store."""
    return engine_or_conn.dialect.name == "sqlite"


def dateparam(conn: Connection, day: date) -> date | str:
    """A date as the driver wants it: ISO text for SQLite (no deprecated adapter)."""
    return day.isoformat() if is_sqlite(conn) else day


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", "credo.store:migrations")
    return cfg


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest migration (a no-op when it is current)."""
    cfg = alembic_config()
    head = ScriptDirectory.from_config(cfg).get_current_head()
    with engine.connect() as conn:
        if MigrationContext.configure(conn).get_current_revision() == head:
            return
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def _sqlite_begin(conn: Connection) -> None:
    # Writers take the write lock up front, so a read-then-write never meets a stale snapshot.
    mode = "IMMEDIATE" if conn.get_execution_options().get("credo_write") else "DEFERRED"
    conn.exec_driver_sql(f"BEGIN {mode}")


def _sqlite_autocommit(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    dbapi_connection.isolation_level = None
