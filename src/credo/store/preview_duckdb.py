"""The preview's columnar engine: DuckDB over a snapshot of the register's scoring columns.

The snapshot holds what scoring reads and nothing else: each record version's subject,
category, dates and flags, the objections, and each subject's organisation. It is kept as
a DuckDB file under CREDO_HOME (in memory when there is no home) and labelled with the
audit chain's head: its sequence number and hash. Every write to records, cases and
subjects appends to the chain in its own transaction, and the chain's hashes link each
entry to all before it, so a snapshot whose head entry is still in the chain is exactly
the register at that entry. A later preview reads only what the audit entries after it
changed (`refresh`; preview_source says which rows each kind of entry names), and replays
an activation's rewritten end and due days by the same DuckDB expressions the preview uses
for a candidate. Any other entry, another schema revision or a chain that no longer holds
the snapshot's head entry (a rebuilt database) makes the next preview read the three
tables afresh.

The scoring itself is the same `RescoreSql` text the databases run (see preview_sql);
tests hold the two engines and the incremental and fresh snapshots equal on SQLite and
PostgreSQL.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine import Connection

from credo.domain.policy import Policy
from credo.store import preview_source, preview_sql
from credo.store.rescore import Bits

try:  # the lock that lets processes take turns on the snapshot file (POSIX)
    import fcntl
except ImportError:  # pragma: no cover - elsewhere the snapshot stays in memory
    fcntl = None  # type: ignore[assignment]

FORMAT = 4  # the snapshot's table layout; a file of another format is read afresh
# Filed records are streamed in this many ids at a time: what one slice holds in memory.
FILED_SLICE = 1_000_000

# Subjects are numbered in the snapshot (`subjects.id`, with the register's id as `name`):
# the scoring groups and joins on a 4-byte key instead of a string; only the comparison
# table names subjects again (preview_sql.columnar_comparison).
# The tables that hold the register's rows, read afresh into `fresh_<name>` first.
_DATA = {
    "records": "(id BIGINT, subject_id INTEGER, category VARCHAR, decided_on DATE, "
    "ends_on DATE, revoked BOOLEAN, counts_from DATE, counts_until DATE, repaired_on DATE)",
    "cases": "(id BIGINT, subject_id INTEGER, kind VARCHAR, record_id BIGINT, "
    "category VARCHAR, filed_on DATE, decided_on DATE, due_on DATE)",
    "subjects": "(id INTEGER, organisation VARCHAR, name VARCHAR)",
}
_BOOKKEEPING = (
    "CREATE TABLE credo_snapshot (format INTEGER, head BIGINT, head_hash VARCHAR, "
    "revision VARCHAR, policy_version BIGINT)",
    # The subjects whose rows an incremental refresh changed, by the head it moved to: the
    # kept "before" scoring rescores only these (see Snapshot.compare).
    "CREATE TABLE credo_touched (seq BIGINT, subject_id INTEGER)",
    # The active policy's scoring as of one day ("before"), named by its SQL text and the
    # head it is current at.
    "CREATE TABLE credo_scored_key (key VARCHAR, head BIGINT)",
)
_TABLES = ("records", "cases", "subjects", "credo_snapshot", "credo_touched", "credo_scored_key")
# Typed DuckDB rows from raw Arrow ones (SQLite's text dates parsed here, in bulk).
_TYPED = {
    "records": "SELECT CAST(t.id AS BIGINT), k.id, t.category, {d:decided_on}, {d:ends_on}, "
    "CAST(t.revoked AS BOOLEAN), {d:counts_from}, {d:counts_until}, {d:repaired_on} "
    "FROM {src} t JOIN {subjects} k ON k.name = t.subject_id",
    "cases": "SELECT CAST(t.id AS BIGINT), k.id, t.kind, {n:record_id}, {s:category}, "
    "{d:filed_on}, {d:decided_on}, {d:due_on} "
    "FROM {src} t JOIN {subjects} k ON k.name = t.subject_id",
    # new subjects are numbered after the highest number in use
    "subjects": "SELECT CAST((SELECT COALESCE(MAX(id), 0) FROM {subjects}) + row_number() "
    "OVER () AS INTEGER), {s:organisation}, t.id FROM {src} t "
    "WHERE t.id NOT IN (SELECT name FROM {subjects})",
    # a fresh read's subjects, into a table that holds only the ones read before them
    "fresh_subjects": "SELECT CAST((SELECT COALESCE(MAX(id), 0) FROM {subjects}) "
    "+ row_number() OVER () AS INTEGER), {s:organisation}, t.id FROM {src} t",
}


def available() -> bool:
    """Whether DuckDB and the ADBC drivers are installed (found, not imported: a process
    that only hands the snapshot to another keeps their memory out of its own)."""
    return all(
        importlib.util.find_spec(name) is not None
        for name in ("adbc_driver_postgresql", "adbc_driver_sqlite", "duckdb", "pyarrow")
    )


def _typed(table: str, source: str, *, empty_is_null: bool, subjects: str = "subjects") -> str:
    """The INSERT's SELECT for `table` from `source`, numbering subjects by the table
    `subjects`; `empty_is_null` for ADBC's SQLite rows."""

    def column(kind: str, name: str) -> str:
        name = f"t.{name}"
        if kind == "d":
            inner = f"NULLIF({name}, '')" if empty_is_null else name
            return f"CAST({inner} AS DATE)"
        if not empty_is_null:
            return f"CAST({name} AS BIGINT)" if kind == "n" else name
        if kind == "n":
            return f"CAST(NULLIF({name}, 0) AS BIGINT)"
        return f"NULLIF({name}, '')"

    sql = _TYPED[table].replace("{src}", source).replace("{subjects}", subjects)
    for kind in "dns":
        while "{" + kind + ":" in sql:
            start = sql.index("{" + kind + ":")
            end = sql.index("}", start)
            sql = sql[:start] + column(kind, sql[start + 3 : end]) + sql[end + 1 :]
    return sql


Moved = preview_source.Moved  # a read found the register past the caller's transaction


@dataclass
class Snapshot:
    """The scoring columns of the register at one audit head, as DuckDB tables.

    Held by one preview at a time (`opened`): it is refreshed to the preview's transaction,
    then scored; `how` says how the last refresh went (current, incremental or full).
    """

    duck: Any  # duckdb.DuckDBPyConnection
    path: Path | None
    how: str = ""

    def run(self, sql: str) -> Sequence[Sequence[Any]]:
        """Rows of a query on the snapshot."""
        rows: list[Any] = self.duck.execute(sql).fetchall()
        return rows

    def compare(self, active: Policy, candidate: Policy, as_of: date) -> Bits | None:
        """Both scorings and the comparison table `credo_preview`, in DuckDB; returns how
        its lists and measures are numbered (`preview_sql.columnar_comparison`).

        The comparison is a temporary table, made by one statement that scores the
        candidate. The active policy's scoring is kept in the snapshot (`credo_scored`) for
        the next preview on the same day: after an incremental refresh only the subjects it
        touched are scored again, by the same SQL restricted to them (as the register's own
        catch-up does).
        """
        before, joined, bits = preview_sql.columnar_comparison(
            active, candidate, as_of, "credo_scored"
        )
        self._score_active(active, as_of, before, bits)
        self.duck.execute(f"DROP TABLE IF EXISTS temp.{preview_sql.TABLE}")
        self.duck.execute(f"CREATE TEMP TABLE {preview_sql.TABLE} AS {joined}")
        return bits

    def score_active(self, active: Policy, as_of: date) -> None:
        """Keep the active policy's scoring as of `as_of` (`credo_scored`), ready for the
        next preview on that day."""
        bits = preview_sql.numbering(active)
        self._score_active(
            active, as_of, preview_sql.active_sql("duckdb", active, as_of, bits=bits), bits
        )

    def _score_active(self, active: Policy, as_of: date, before: str, bits: Bits | None) -> None:
        """`credo_scored` = the `before` scoring at the snapshot's head."""
        key = hashlib.sha256(before.encode()).hexdigest()
        kept = self.head()
        assert kept is not None, "compare after refresh"
        duck = self.duck
        found = duck.execute("SELECT key, head FROM credo_scored_key").fetchone()
        duck.execute("BEGIN TRANSACTION")
        try:
            if found is not None and found[0] == key and int(found[1]) <= kept.seq:
                touched = f"SELECT subject_id FROM credo_touched WHERE seq > {int(found[1])}"
                if duck.execute(f"SELECT COUNT(*) FROM ({touched})").fetchone()[0]:
                    some = preview_sql.active_sql("duckdb", active, as_of, touched, bits)
                    duck.execute(f"DELETE FROM credo_scored WHERE subject_id IN ({touched})")
                    duck.execute(f"INSERT INTO credo_scored {some}")
            else:
                duck.execute("DROP TABLE IF EXISTS main.credo_scored")
                duck.execute(f"CREATE TABLE credo_scored AS {before}")
            duck.execute("DELETE FROM credo_touched")
            duck.execute("DELETE FROM credo_scored_key")
            duck.execute("INSERT INTO credo_scored_key VALUES (?, ?)", [key, kept.seq])
            duck.execute("COMMIT")
        except BaseException:
            duck.execute("ROLLBACK")
            raise

    def head(self) -> preview_source.Head | None:
        """The head the snapshot was taken at, or None when it holds nothing usable."""
        try:
            row = self.duck.execute(
                "SELECT format, head, head_hash, revision, policy_version FROM credo_snapshot"
            ).fetchone()
        except Exception:  # no such table: an empty or foreign file
            return None
        if row is None or row[0] != FORMAT:
            return None
        return preview_source.Head(int(row[1]), str(row[2]), str(row[3]), int(row[4]))

    def refresh(self, engine: Engine, conn: Connection, afresh_up_to: int | None = None) -> None:
        """Bring the snapshot to exactly what `conn`'s transaction sees.

        Raises Moved when a read had to be taken at a later head than `conn`'s (a write
        that changes scoring committed meanwhile): the caller retries in a new transaction,
        and the next refresh is incremental. With `afresh_up_to`, a snapshot that cannot be
        caught up is read afresh only from a register of at most that many records (a fresh
        read holds them all in memory); otherwise it is left as it is and `how` is "".
        """
        now = preview_source.read_head(conn)
        self.how = self._catch_up(engine, conn, now)
        if not self.how:
            if afresh_up_to is not None and not preview_source.at_most(
                conn, "records", afresh_up_to
            ):
                return
            self._read_afresh(engine, now)
            self.how = "full"

    def _catch_up(self, engine: Engine, conn: Connection, now: preview_source.Head) -> str:
        """ "current" or "incremental" when the kept snapshot could be brought to `now`,
        "" when the tables must be read afresh."""
        kept = self.head()
        if kept is None or kept.revision != now.revision or kept.seq > now.seq:
            return ""
        if (
            preview_source.hash_at(conn, kept.seq) != kept.hash
        ):  # another database, or a rebuilt one
            return ""
        if kept.seq == now.seq:
            return "current"
        changes = preview_source.changes(conn, kept.seq)
        if changes.full is not None:
            return ""
        self._apply(engine, conn, changes, kept, now)
        return "incremental" if changes.touched else "current"

    # -------------------------------------------------------------------- incremental

    def _apply(
        self,
        engine: Engine,
        conn: Connection,
        changes: preview_source.Changes,
        kept: preview_source.Head,
        now: preview_source.Head,
    ) -> None:
        """Apply the changes after `kept` in one DuckDB transaction, ending at `now`.

        The filed id ranges stream in through ADBC (`filed_records`, as the register stood
        at `now`); the touched subjects' rows and new subjects come through `conn`.
        """
        subjects = sorted(changes.subjects)
        record_rows, case_rows, subject_rows = preview_source.changed_rows(conn, changes)
        ranges = preview_source.merged(changes.ranges)
        duck = self.duck
        duck.execute("BEGIN TRANSACTION")
        try:
            policy = kept.policy_version
            for version_id, ends in changes.activations:
                self._replay_activation(conn, policy, version_id, ends)
                policy = version_id
            _load(duck, "subjects", subject_rows, replace=False)  # numbered before use
            if ranges:
                self._load_filed(engine, ranges, now)
            for chunk in preview_source.chunks(subjects):  # every row of these, read again
                keys = f"(SELECT id FROM subjects WHERE name IN {_values(chunk)})"
                duck.execute(f"DELETE FROM records WHERE subject_id IN {keys}")
                duck.execute(f"DELETE FROM cases WHERE subject_id IN {keys}")
            _load(duck, "records", _unique(record_rows), replace=True)
            _load(duck, "cases", case_rows, replace=False)
            if changes.activations:  # every record's end may have moved
                duck.execute("DELETE FROM credo_scored_key")
            names = {
                *subjects,
                *(str(r[1]) for r in record_rows),
                *(str(r[0]) for r in subject_rows),
            }
            _touch(
                duck,
                now.seq,
                "SELECT id FROM subjects WHERE name IN (SELECT name FROM credo_names)",
                names=sorted(names),
            )
            if ranges:
                filed = sum(last - first + 1 for first, last in ranges)
                if filed * 4 >= duck.execute("SELECT COUNT(*) FROM subjects").fetchone()[0]:
                    # most subjects may be touched: the kept scoring is made again whole (a
                    # DISTINCT of 10M records' subjects ran out of 32 MB)
                    duck.execute("DELETE FROM credo_scored_key")
                    duck.execute("DELETE FROM credo_touched")
                else:
                    where = _in(ranges)
                    _touch(duck, now.seq, f"SELECT subject_id FROM records WHERE {where}")
            _label(duck, now)
            duck.execute("COMMIT")
        except BaseException:
            duck.execute("ROLLBACK")
            raise

    def _load_filed(
        self, engine: Engine, ranges: list[tuple[int, int]], now: preview_source.Head
    ) -> None:
        """The records of filed id ranges, streamed in as the register stood at `now`, a
        slice of ids at a time (rows already there under those ids are replaced)."""
        duck = self.duck
        duck.execute(f"DELETE FROM records WHERE {_in(ranges)}")
        sqlite = engine.dialect.name == "sqlite"
        # SQLite's columns as text either way, whatever ADBC inferred
        source = f"(SELECT {_AS_TEXT} FROM credo_filed)" if sqlite else "credo_filed"
        insert = f"INSERT INTO records {_typed('records', source, empty_is_null=sqlite)}"
        with preview_source.filed_records(engine, now) as read:
            for first, last in ranges:
                for start in range(first, last + 1, FILED_SLICE):
                    duck.register("credo_filed", read(start, min(last, start + FILED_SLICE - 1)))
                    try:
                        duck.execute(insert)
                    finally:
                        duck.unregister("credo_filed")

    def _replay_activation(
        self, conn: Connection, previous: int, version_id: int, ends: list[str]
    ) -> None:
        """Rewrite end and due days as activating `version_id` did (credo.services.policies),
        by the same DuckDB expressions the preview predicts an activation with."""
        new = preview_source.stored_policy(conn, version_id)
        old = preview_source.stored_policy(conn, previous) if previous else None
        for category_id in ends:
            category = new.category_by_id.get(category_id)
            if category is None:
                raise RuntimeError(f"activation rewrote ends of unknown {category_id!r}")
            end = preview_sql.add_duration("duckdb", "decided_on", category.valid_for)
            self.duck.execute(
                "UPDATE records SET ends_on = CASE WHEN repaired_on IS NOT NULL AND "
                f"repaired_on < {end} THEN repaired_on ELSE {end} END WHERE category = ?",
                [category_id],
            )
        if old is None or old.policy.objection_period != new.policy.objection_period:
            due = preview_sql.add_duration("duckdb", "filed_on", new.policy.objection_period)
            self.duck.execute(f"UPDATE cases SET due_on = {due}")

    # -------------------------------------------------------------------- afresh

    def _read_afresh(self, engine: Engine, now: preview_source.Head) -> None:
        """Read the three tables through ADBC in one transaction; label them `now` when
        nothing that changes scoring was written after it, else with the later head.

        They are read into `fresh_<table>`, a part at a time, each part committed on its own
        (DuckDB keeps a transaction's new rows in memory, whatever its memory limit: 65 to
        80 MB for a million subjects); one transaction then puts them in place and labels
        them. A read cut short leaves the snapshot as it was, and drops its parts.
        """
        duck = self.duck
        sqlite = engine.dialect.name == "sqlite"
        fresh = {name: f"fresh_{name}" for name in _DATA}
        numbered = _typed(
            "fresh_subjects", "raw_subjects", empty_is_null=sqlite, subjects=fresh["subjects"]
        )

        def load_subjects(parts: Iterator[Any]) -> None:  # numbered first, as they come
            duck.execute(f"DELETE FROM {fresh['subjects']}")  # an earlier attempt's
            for part in parts:
                duck.register("raw_subjects", part)
                try:
                    duck.execute(f"INSERT INTO {fresh['subjects']} {numbered}")
                finally:
                    duck.unregister("raw_subjects")

        tables: dict[str, Any] = {}
        try:
            for name, columns in _DATA.items():
                duck.execute(f"DROP TABLE IF EXISTS main.{fresh[name]}")
                duck.execute(f"CREATE TABLE {fresh[name]} {columns}")
            tables, seen, later = preview_source.read_tables(engine, now.seq, load_subjects)
            for name, table in tables.items():
                duck.register(f"raw_{name}", table)
            for name in ("records", "cases"):
                source = f"raw_{name}"
                if name == "records" and sqlite:
                    # an empty result comes typed as integers: text either way
                    sparse = ", ".join(
                        f"CAST({c} AS VARCHAR) AS {c}" for c in preview_source.SPARSE
                    )
                    source = (
                        f"(SELECT r.*, {sparse} FROM raw_records r LEFT JOIN raw_sparse USING (id))"
                    )
                typed = _typed(name, source, empty_is_null=sqlite, subjects=fresh["subjects"])
                duck.execute(f"INSERT INTO {fresh[name]} {typed}")
            duck.execute("BEGIN TRANSACTION")
            try:
                for name in (*_TABLES, "credo_scored"):
                    duck.execute(f"DROP TABLE IF EXISTS main.{name}")
                for name in _DATA:
                    duck.execute(f"ALTER TABLE {fresh[name]} RENAME TO {name}")
                for ddl in _BOOKKEEPING:
                    duck.execute(ddl)
                _label(duck, now if not later else seen)
                duck.execute("COMMIT")
            except BaseException:
                duck.execute("ROLLBACK")
                raise
        finally:
            for name in tables:  # else DuckDB keeps the Arrow tables alive
                duck.unregister(f"raw_{name}")
            tables.clear()
            for name in _DATA:
                duck.execute(f"DROP TABLE IF EXISTS main.{fresh[name]}")
        if self.path is not None:
            duck.execute("CHECKPOINT")
        if later:
            raise Moved("the register changed while its snapshot was read; try again")


def _values(chunk: list[str]) -> str:
    return "(" + ", ".join("'" + s.replace("'", "''") + "'" for s in chunk) + ")"


def _in(ranges: list[tuple[int, int]]) -> str:
    return "(" + " OR ".join(f"id BETWEEN {int(a)} AND {int(b)}" for a, b in ranges) + ")"


# The filed records' columns as SQLite text (an empty stream is typed as integers).
_AS_TEXT = ", ".join(
    f"CAST({c} AS VARCHAR) AS {c}" if c not in ("id", "revoked") else c
    for c in (c.strip() for c in preview_source.COLUMNS["records"].split(","))
)


def _touch(duck: Any, seq: int, subjects: str, names: list[str] | None = None) -> None:
    """Note the subjects (numbers) `subjects` selects as touched at `seq`, once each: the
    kept scoring rescores them (`credo_names` is `names`, when given)."""
    if names is not None:
        if not names:
            return
        import pyarrow as pa

        duck.register("credo_names", pa.table({"name": pa.array(names, pa.string())}))
    try:
        duck.execute(
            f"INSERT INTO credo_touched SELECT DISTINCT ?, t.id FROM ({subjects}) t(id) "
            "WHERE t.id NOT IN (SELECT subject_id FROM credo_touched)",
            [seq],
        )
    finally:
        if names is not None:
            duck.unregister("credo_names")


def _unique(rows: list[Any]) -> list[Any]:
    return list({int(r[0]): r for r in rows}.values())


def _load(duck: Any, table: str, rows: Sequence[Any], *, replace: bool) -> None:
    """Insert rows read through SQLAlchemy; `replace` drops the rows with the same ids."""
    if not rows:
        return
    import pyarrow as pa

    names = [c.strip() for c in preview_source.COLUMNS[table].split(",")]
    arrow = pa.table({name: pa.array([r[i] for r in rows]) for i, name in enumerate(names)})
    duck.register("credo_delta", arrow)
    try:
        if replace:
            duck.execute(f"DELETE FROM {table} WHERE id IN (SELECT id FROM credo_delta)")
        duck.execute(f"INSERT INTO {table} {_typed(table, 'credo_delta', empty_is_null=False)}")
    finally:
        duck.unregister("credo_delta")


def _label(duck: Any, head: preview_source.Head) -> None:
    duck.execute("DELETE FROM credo_snapshot")
    duck.execute(
        "INSERT INTO credo_snapshot VALUES (?, ?, ?, ?, ?)",
        [FORMAT, head.seq, head.hash, head.revision, head.policy_version],
    )


# ----------------------------------------------------------------------------- holding


_LOCK = threading.Lock()  # guards the two dicts below
_locks: dict[str, threading.Lock] = {}
_memory: dict[str, Any] = {}  # registers without a home: one in-memory snapshot each


def snapshot_path(engine: Engine, directory: Path) -> Path:
    """Where the snapshot of this database is kept under `directory`."""
    url = engine.url.render_as_string(hide_password=True)
    return directory / f"preview-snapshot-{hashlib.sha256(url.encode()).hexdigest()[:16]}.duckdb"


@contextlib.contextmanager
def opened(
    engine: Engine, directory: Path | None, *, settings: dict[str, Any] | None = None
) -> Iterator[Snapshot]:
    """The database's snapshot, held by this preview alone until it is done with it.

    Take it before the preview's read transaction begins: a preview that held it before
    saw an earlier or equal head, so refreshing only ever moves the snapshot forward.
    Previews in other processes (API workers, the command line) wait on a lock file.
    `settings` are DuckDB's (memory_limit, threads) for a snapshot file opened here.
    """
    import duckdb

    url = engine.url.render_as_string(hide_password=True)
    with _LOCK:
        lock = _locks.setdefault(url, threading.Lock())
    with lock:
        held = _lock_file(engine, directory)
        if held is None:
            with _LOCK:
                duck = _memory.get(url)
                if duck is None:
                    duck = _memory[url] = duckdb.connect()
            yield Snapshot(duck, None)
            return
        with held:
            fcntl.flock(held, fcntl.LOCK_EX)
            try:
                path = snapshot_path(engine, Path(held.name).parent)
                duck = _open_file(path)
                for name, value in (settings or {}).items():
                    duck.execute(f"SET {name} = '{value}'")
                try:
                    yield Snapshot(duck, path)
                finally:
                    duck.close()
            finally:
                fcntl.flock(held, fcntl.LOCK_UN)


def _lock_file(engine: Engine, directory: Path | None) -> Any:
    """The open lock file beside the snapshot, or None to keep the snapshot in memory (no
    home, no POSIX locks, or a home that cannot be written)."""
    if directory is None or fcntl is None:
        return None
    try:
        directory.mkdir(parents=True, exist_ok=True)
        return open(snapshot_path(engine, directory).with_suffix(".lock"), "w")
    except OSError:
        return None


def _open_file(path: Path) -> Any:
    import duckdb

    try:
        return duckdb.connect(str(path))
    except duckdb.Error:  # not a DuckDB file of this version: it is only a cache
        path.unlink(missing_ok=True)
        Path(f"{path}.wal").unlink(missing_ok=True)
        return duckdb.connect(str(path))


def forget(directory: Path | None = None, engine: Engine | None = None) -> None:
    """Drop the in-memory snapshots, and the snapshot file of `engine` under `directory`:
    the next preview reads the register afresh."""
    with _LOCK:
        for duck in _memory.values():
            duck.close()
        _memory.clear()
    if directory is not None and engine is not None:
        path = snapshot_path(engine, directory)
        path.unlink(missing_ok=True)
        Path(f"{path}.wal").unlink(missing_ok=True)
