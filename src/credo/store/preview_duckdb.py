"""The preview's columnar engine: DuckDB over a snapshot of the register's scoring columns.

The snapshot holds what scoring reads and nothing else: each record version's subject,
category, dates and flags, the objections, and each subject's organisation. It is read
through ADBC (Arrow straight from SQLite or from PostgreSQL's binary COPY, no Python rows)
and is named by the head of the audit chain: every write to records and cases appends to
the chain in the same transaction, so a snapshot taken between two equal heads is exactly
the register at that head, and a later preview at the same head can reuse it.

The scoring itself is the same `RescoreSql` text the databases run (see preview_sql);
tests hold the two engines equal on SQLite and PostgreSQL.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine

from credo.domain.policy import Policy
from credo.store import preview_sql

_HEAD = "SELECT COALESCE(MAX(seq), 0) FROM audit_entries"
# SQLite keeps dates as ISO text and flags as integers; empty strings stand for NULL so that
# every column has one type from the first row on (ADBC infers types from the first batch).
_SQLITE = {
    "records": "SELECT id, subject_id, category, decided_on, ends_on, revoked, "
    "COALESCE(counts_from, '') AS counts_from, COALESCE(counts_until, '') AS counts_until, "
    "COALESCE(repaired_on, '') AS repaired_on FROM records",
    "cases": "SELECT kind, COALESCE(record_id, 0) AS record_id, "
    "COALESCE(category, '') AS category, filed_on, COALESCE(decided_on, '') AS decided_on, "
    "due_on FROM cases WHERE kind = 'objection'",
    "subjects": "SELECT id, COALESCE(organisation, '') AS organisation FROM subjects",
}
_POSTGRES = {
    "records": "SELECT id, subject_id, category, decided_on, ends_on, revoked, counts_from, "
    "counts_until, repaired_on FROM records",
    "cases": "SELECT kind, record_id, category, filed_on, decided_on, due_on FROM cases "
    "WHERE kind = 'objection'",
    "subjects": "SELECT id, organisation FROM subjects",
}
# Typed DuckDB tables from the raw Arrow ones (SQLite's text dates parsed here, in bulk).
_TYPED = {
    "records": "SELECT CAST(id AS BIGINT) AS id, subject_id, category, "
    "CAST(decided_on AS DATE) AS decided_on, CAST(ends_on AS DATE) AS ends_on, "
    "CAST(revoked AS BOOLEAN) AS revoked, {d:counts_from}, {d:counts_until}, {d:repaired_on} "
    "FROM raw_records",
    "cases": "SELECT kind, {n:record_id}, {s:category}, CAST(filed_on AS DATE) AS filed_on, "
    "{d:decided_on}, CAST(due_on AS DATE) AS due_on FROM raw_cases",
    "subjects": "SELECT id, {s:organisation} FROM raw_subjects",
}
RETRIES = 3


def available() -> bool:
    """Whether DuckDB and the ADBC drivers are installed."""
    try:
        import adbc_driver_postgresql.dbapi  # type: ignore[import-untyped]  # noqa: F401
        import adbc_driver_sqlite.dbapi  # noqa: F401
        import duckdb  # noqa: F401
    except ImportError:
        return False
    return True


def _typed(table: str, sqlite: bool) -> str:
    def column(kind: str, name: str) -> str:
        if not sqlite:
            return name
        if kind == "d":
            return f"CAST(NULLIF({name}, '') AS DATE) AS {name}"
        if kind == "n":
            return f"NULLIF({name}, 0) AS {name}"
        return f"NULLIF({name}, '') AS {name}"

    sql = _TYPED[table]
    for kind in "dns":
        while "{" + kind + ":" in sql:
            start = sql.index("{" + kind + ":")
            end = sql.index("}", start)
            sql = sql[:start] + column(kind, sql[start + 3 : end]) + sql[end + 1 :]
    return sql


@dataclass
class Snapshot:
    """The scoring columns of the register at one audit head, as DuckDB tables.

    A preview holds `lock` from `compare` to its last query: previews sharing the snapshot
    take turns, so none reads another's comparison table.
    """

    url: str
    head: int
    duck: Any  # duckdb.DuckDBPyConnection
    lock: threading.RLock = field(default_factory=threading.RLock)

    def run(self, sql: str) -> Sequence[Sequence[Any]]:
        """Rows of a query on the snapshot."""
        with self.lock:
            rows: list[Any] = self.duck.execute(sql).fetchall()
        return rows

    def compare(self, active: Policy, candidate: Policy, as_of: date) -> None:
        """Both scorings and the comparison table `credo_preview`, in DuckDB."""
        before, after, joined = preview_sql.comparison_sql("duckdb", active, candidate, as_of)
        with self.lock:
            for name in ("credo_preview_before", "credo_preview_after", preview_sql.TABLE):
                self.duck.execute(f"DROP TABLE IF EXISTS {name}")
            self.duck.execute(f"CREATE TABLE credo_preview_before AS {before}")
            self.duck.execute(f"CREATE TABLE credo_preview_after AS {after}")
            self.duck.execute(f"CREATE TABLE {preview_sql.TABLE} AS {joined}")
            self.duck.execute("DROP TABLE credo_preview_before")
            self.duck.execute("DROP TABLE credo_preview_after")


_LOCK = threading.Lock()  # guards the cache
_cache: dict[str, Snapshot] = {}


def snapshot(engine: Engine, head: int, *, reuse: bool = True) -> Snapshot:
    """The register's scoring columns at audit head `head` (the head the caller's own
    transaction sees), from the cache when it holds that head, else read afresh.

    Raises RuntimeError when writes keep moving the head while the snapshot is read.
    """
    url = engine.url.render_as_string(hide_password=False)
    with _LOCK:
        kept = _cache.get(url)
    if reuse and kept is not None and kept.head == head:
        return kept
    for _ in range(RETRIES):
        taken = _read(engine, url)
        if taken.head == head:
            with _LOCK:
                _cache.clear()  # one snapshot at a time: it can be large
                _cache[url] = taken
            return taken
        taken.duck.close()
    raise RuntimeError("the register kept changing while its snapshot was read; try again")


def forget() -> None:
    """Drop every cached snapshot."""
    with _LOCK:
        for kept in _cache.values():
            kept.duck.close()
        _cache.clear()


def _read(engine: Engine, url: str) -> Snapshot:
    """Read the three tables through ADBC between two reads of the audit head."""
    import duckdb

    sqlite = engine.dialect.name == "sqlite"
    queries = _SQLITE if sqlite else _POSTGRES
    tables: dict[str, Any] = {}
    with _connect(engine) as conn, conn.cursor() as cur:
        if not sqlite:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        cur.execute(_HEAD)
        first = int(cur.fetchone()[0])
        for name, sql in queries.items():
            cur.execute(sql)
            tables[name] = cur.fetch_arrow_table()
        cur.execute(_HEAD)
        last = int(cur.fetchone()[0])
        conn.rollback()
    duck = duckdb.connect()
    for name, table in tables.items():
        duck.register(f"raw_{name}", table)
        duck.execute(f"CREATE TABLE {name} AS {_typed(name, sqlite)}")
        duck.unregister(f"raw_{name}")
    tables.clear()
    return Snapshot(url, first if first == last else -1, duck)


def _connect(engine: Engine) -> Any:
    url = engine.url
    if engine.dialect.name == "sqlite":
        import adbc_driver_sqlite.dbapi

        path = quote(str(url.database), safe="/")
        return adbc_driver_sqlite.dbapi.connect(f"file:{path}?mode=ro")
    import adbc_driver_postgresql.dbapi

    uri = url.set(drivername="postgresql").render_as_string(hide_password=False)
    return adbc_driver_postgresql.dbapi.connect(uri)
