"""The preview's columnar engine: DuckDB over a snapshot of the register's scoring columns.

The snapshot holds what scoring reads and nothing else: each record version's subject,
category, dates and flags, the objections, and each subject's organisation. It is kept as
a DuckDB file under CREDO_HOME (in memory when there is no home) and labelled with the
audit chain's head: its sequence number and hash. Every write to records, cases and
subjects appends to the chain in its own transaction, and the chain's hashes link each
entry to all before it, so a snapshot whose head entry is still in the chain is exactly
the register at that entry. A later preview reads only what changed after it
(`refresh`):

- `records.filed`: the filed id range its entry names (ids are drawn before the entry is
  appended, so a range committed late is still found);
- `subjects.imported`: the subjects of the batch its entry names;
- objections and case decisions (`objection.filed`, `*.decided`): every record version and
  objection of the entry's subject (a decision revokes, repairs or corrects all versions of
  one reference, and all versions of a reference belong to one subject);
- `policy.activated`: the end days and objection due days it rewrote, recomputed in DuckDB
  by the same expressions the preview uses for a candidate;
- writes that cannot change a score (`inquiry.made`, rescoring, keys, users, exports,
  repair and review requests) change nothing in the snapshot.

Any other entry, another schema revision or a chain that no longer holds the snapshot's
head entry (a rebuilt database) makes the next preview read the three tables afresh
through ADBC (Arrow straight from SQLite or from PostgreSQL's binary COPY).

The scoring itself is the same `RescoreSql` text the databases run (see preview_sql);
tests hold the two engines and the incremental and fresh snapshots equal on SQLite and
PostgreSQL.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine, text
from sqlalchemy.engine import Connection

from credo.domain.policy import Policy
from credo.store import preview_sql

try:  # the lock that lets processes take turns on the snapshot file (POSIX)
    import fcntl
except ImportError:  # pragma: no cover - elsewhere the snapshot stays in memory
    fcntl = None  # type: ignore[assignment]

FORMAT = 4  # the snapshot's table layout; a file of another format is read afresh
# Audit actions that never change a scoring column of records, cases or subjects.
IGNORED = (
    "inquiry.made",
    "register.rescored",
    "register.swept",
    "file.exported",
    "key.created",
    "key.revoked",
    "user.added",
    "repair.filed",  # a repair request is a case of kind 'repair': only its decision counts
    "review.filed",
)
# Audit actions whose entry names the subject all of whose records and objections may change.
BY_SUBJECT = ("objection.filed", "objection.decided", "repair.decided", "review.decided")
# More new records than this share of the snapshot: one fresh read is cheaper.
FULL_READ_SHARE = 0.5
CHUNK = 500  # ids per IN list

# Subjects are numbered in the snapshot (`subjects.id`, with the register's id as `name`):
# the scoring groups and joins on a 4-byte key instead of a string; only the comparison
# table names subjects again (preview_sql.comparison_sql).
_SCHEMA = (
    "CREATE TABLE records (id BIGINT, subject_id INTEGER, category VARCHAR, "
    "decided_on DATE, ends_on DATE, revoked BOOLEAN, counts_from DATE, counts_until DATE, "
    "repaired_on DATE)",
    "CREATE TABLE cases (id BIGINT, subject_id INTEGER, kind VARCHAR, record_id BIGINT, "
    "category VARCHAR, filed_on DATE, decided_on DATE, due_on DATE)",
    "CREATE TABLE subjects (id INTEGER, organisation VARCHAR, name VARCHAR)",
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
_COLUMNS = {
    "records": (
        "id, subject_id, category, decided_on, ends_on, revoked, counts_from, counts_until, "
        "repaired_on"
    ),
    "cases": "id, subject_id, kind, record_id, category, filed_on, decided_on, due_on",
    "subjects": "id, organisation",
}
_FROM = {
    "records": "FROM records",
    "cases": "FROM cases WHERE kind = 'objection'",
    "subjects": "FROM subjects",
}
# SQLite keeps dates as ISO text and flags as integers; empty strings stand for NULL so that
# every column has one type from the first row on (ADBC infers types from the first batch).
# The three dates that are almost always NULL come in a second, short result: as '' in the
# main one they cost more to read than the other columns together.
_SPARSE = ("counts_from", "counts_until", "repaired_on")
_SQLITE = {
    "records": "SELECT id, subject_id, category, decided_on, ends_on, revoked FROM records",
    "sparse": "SELECT id, COALESCE(counts_from, '') AS counts_from, "
    "COALESCE(counts_until, '') AS counts_until, COALESCE(repaired_on, '') AS repaired_on "
    "FROM records WHERE counts_from IS NOT NULL OR counts_until IS NOT NULL "
    "OR repaired_on IS NOT NULL",
    "cases": "SELECT id, subject_id, kind, COALESCE(record_id, 0) AS record_id, "
    "COALESCE(category, '') AS category, filed_on, COALESCE(decided_on, '') AS decided_on, "
    "due_on FROM cases WHERE kind = 'objection'",
    "subjects": "SELECT id, COALESCE(organisation, '') AS organisation FROM subjects",
}
# Typed DuckDB rows from raw Arrow ones (SQLite's text dates parsed here, in bulk).
_TYPED = {
    "records": "SELECT CAST(t.id AS BIGINT), k.id, t.category, {d:decided_on}, {d:ends_on}, "
    "CAST(t.revoked AS BOOLEAN), {d:counts_from}, {d:counts_until}, {d:repaired_on} "
    "FROM {src} t JOIN subjects k ON k.name = t.subject_id",
    "cases": "SELECT CAST(t.id AS BIGINT), k.id, t.kind, {n:record_id}, {s:category}, "
    "{d:filed_on}, {d:decided_on}, {d:due_on} "
    "FROM {src} t JOIN subjects k ON k.name = t.subject_id",
    # new subjects are numbered after the highest number in use
    "subjects": "SELECT CAST((SELECT COALESCE(MAX(id), 0) FROM subjects) + row_number() "
    "OVER () AS INTEGER), {s:organisation}, t.id FROM {src} t "
    "WHERE t.id NOT IN (SELECT name FROM subjects)",
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


def _typed(table: str, source: str, *, empty_is_null: bool) -> str:
    """The INSERT's SELECT for `table` from `source`; `empty_is_null` for ADBC's SQLite rows."""

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

    sql = _TYPED[table].replace("{src}", source)
    for kind in "dns":
        while "{" + kind + ":" in sql:
            start = sql.index("{" + kind + ":")
            end = sql.index("}", start)
            sql = sql[:start] + column(kind, sql[start + 3 : end]) + sql[end + 1 :]
    return sql


class Moved(RuntimeError):
    """A fresh read found the register already past the caller's transaction: retry."""


@dataclass(frozen=True)
class Head:
    """The audit chain's head as one transaction sees it, and the schema revision."""

    seq: int
    hash: str
    revision: str
    policy_version: int


@dataclass
class _Changes:
    """What the audit entries after a snapshot's head changed."""

    ranges: list[tuple[int, int]] = field(default_factory=list)
    subjects: set[str] = field(default_factory=set)
    batches: set[int] = field(default_factory=set)
    activations: list[tuple[int, list[str]]] = field(default_factory=list)
    new_records: int = 0
    full: str | None = None  # why the tables must be read afresh

    @property
    def touched(self) -> bool:
        """Whether any scoring column changed (else only the label moves)."""
        return bool(self.ranges or self.subjects or self.batches or self.activations)


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

    def compare(self, active: Policy, candidate: Policy, as_of: date) -> None:
        """Both scorings and the comparison table `credo_preview`, in DuckDB.

        The candidate's scoring and the comparison are temporary tables. The active
        policy's scoring is kept in the snapshot (`credo_scored`) for the next preview on
        the same day: after an incremental refresh only the subjects it touched are scored
        again, by the same SQL restricted to them (as the register's own catch-up does).
        """
        before, after, joined = preview_sql.comparison_sql("duckdb", active, candidate, as_of)
        self._score_active(active, as_of, before)
        self.duck.execute("DROP VIEW IF EXISTS temp.credo_preview_before")
        for name in ("credo_preview_after", preview_sql.TABLE):
            self.duck.execute(f"DROP TABLE IF EXISTS temp.{name}")
        self.duck.execute("CREATE TEMP VIEW credo_preview_before AS SELECT * FROM credo_scored")
        self.duck.execute(f"CREATE TEMP TABLE credo_preview_after AS {after}")
        self.duck.execute(f"CREATE TEMP TABLE {preview_sql.TABLE} AS {joined}")
        self.duck.execute("DROP VIEW temp.credo_preview_before")
        self.duck.execute("DROP TABLE temp.credo_preview_after")

    def _score_active(self, active: Policy, as_of: date, before: str) -> None:
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
                    some = preview_sql.active_sql("duckdb", active, as_of, touched)
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

    def head(self) -> Head | None:
        """The head the snapshot was taken at, or None when it holds nothing usable."""
        try:
            row = self.duck.execute(
                "SELECT format, head, head_hash, revision, policy_version FROM credo_snapshot"
            ).fetchone()
        except Exception:  # no such table: an empty or foreign file
            return None
        if row is None or row[0] != FORMAT:
            return None
        return Head(int(row[1]), str(row[2]), str(row[3]), int(row[4]))

    def refresh(self, engine: Engine, conn: Connection) -> None:
        """Bring the snapshot to exactly what `conn`'s transaction sees.

        Raises Moved when a fresh read had to be taken at a later head than `conn`'s (a
        write that changes scoring committed meanwhile): the caller retries in a new
        transaction, and the next refresh is incremental.
        """
        now = read_head(conn)
        self.how = self._catch_up(conn, now)
        if not self.how:
            self._read_afresh(engine, now)
            self.how = "full"

    def _catch_up(self, conn: Connection, now: Head) -> str:
        """ "current" or "incremental" when the kept snapshot could be brought to `now`,
        "" when the tables must be read afresh."""
        kept = self.head()
        if kept is None or kept.revision != now.revision or kept.seq > now.seq:
            return ""
        if _hash_at(conn, kept.seq) != kept.hash:  # another database, or a rebuilt one
            return ""
        if kept.seq == now.seq:
            return "current"
        changes = _changes(conn, kept.seq)
        if changes.new_records > FULL_READ_SHARE * max(1, self._count("records")):
            changes.full = "most records are new"
        if changes.full is not None:
            return ""
        self._apply(conn, changes, kept, now)
        return "incremental" if changes.touched else "current"

    def _count(self, table: str) -> int:
        return int(self.duck.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    # -------------------------------------------------------------------- incremental

    def _apply(self, conn: Connection, changes: _Changes, kept: Head, now: Head) -> None:
        """Apply the changes after `kept` in one DuckDB transaction, ending at `now`."""
        subjects = sorted(changes.subjects)
        record_rows = _rows_by_subject(conn, "records", subjects)
        for first, last in _merged(changes.ranges):
            record_rows += conn.execute(
                text(f"SELECT {_COLUMNS['records']} FROM records WHERE id BETWEEN :a AND :b"),
                {"a": first, "b": last},
            ).all()
        case_rows = _rows_by_subject(conn, "cases", subjects)
        subject_rows: list[Any] = []
        if changes.batches:
            ids = ", ".join(str(int(b)) for b in sorted(changes.batches))
            subject_rows = list(
                conn.execute(
                    text(f"SELECT {_COLUMNS['subjects']} FROM subjects WHERE batch_id IN ({ids})")
                ).all()
            )
        duck = self.duck
        duck.execute("BEGIN TRANSACTION")
        try:
            policy = kept.policy_version
            for version_id, ends in changes.activations:
                self._replay_activation(conn, policy, version_id, ends)
                policy = version_id
            for chunk in _chunks(subjects):
                keys = f"(SELECT id FROM subjects WHERE name IN {_values(chunk)})"
                duck.execute(f"DELETE FROM records WHERE subject_id IN {keys}")
                duck.execute(f"DELETE FROM cases WHERE subject_id IN {keys}")
            _load(duck, "subjects", subject_rows, replace=False)  # numbered before use
            _load(duck, "records", _unique(record_rows), replace=True)
            _load(duck, "cases", case_rows, replace=False)
            if changes.activations:  # every record's end may have moved
                duck.execute("DELETE FROM credo_scored_key")
            names = {
                *subjects,
                *(str(r[1]) for r in record_rows),
                *(str(r[0]) for r in subject_rows),
            }
            for chunk in _chunks(sorted(names)):
                duck.execute(
                    "INSERT INTO credo_touched SELECT ?, id FROM subjects "
                    f"WHERE name IN {_values(chunk)}",
                    [now.seq],
                )
            _label(duck, now)
            duck.execute("COMMIT")
        except BaseException:
            duck.execute("ROLLBACK")
            raise

    def _replay_activation(
        self, conn: Connection, previous: int, version_id: int, ends: list[str]
    ) -> None:
        """Rewrite end and due days as activating `version_id` did (credo.services.policies),
        by the same DuckDB expressions the preview predicts an activation with."""
        new = _stored_policy(conn, version_id)
        old = _stored_policy(conn, previous) if previous else None
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

    def _read_afresh(self, engine: Engine, now: Head) -> None:
        """Read the three tables through ADBC in one transaction; label them `now` when
        nothing that changes scoring was written after it, else with the later head."""
        tables, seen, later = _read_tables(engine, now.seq)
        duck = self.duck
        duck.execute("BEGIN TRANSACTION")
        try:
            for name in (*_TABLES, "credo_scored"):
                duck.execute(f"DROP TABLE IF EXISTS main.{name}")
            for ddl in _SCHEMA:
                duck.execute(ddl)
            sqlite = engine.dialect.name == "sqlite"
            for name, table in tables.items():
                duck.register(f"raw_{name}", table)
            for name in ("subjects", "records", "cases"):  # subjects numbered first
                source = f"raw_{name}"
                if name == "records" and sqlite:
                    # an empty result comes typed as integers: text either way
                    sparse = ", ".join(f"CAST({c} AS VARCHAR) AS {c}" for c in _SPARSE)
                    source = (
                        f"(SELECT r.*, {sparse} FROM raw_records r LEFT JOIN raw_sparse USING (id))"
                    )
                duck.execute(f"INSERT INTO {name} {_typed(name, source, empty_is_null=sqlite)}")
            for name in tables:
                duck.unregister(f"raw_{name}")
            _label(duck, now if not later else seen)
            duck.execute("COMMIT")
        except BaseException:
            duck.execute("ROLLBACK")
            raise
        finally:
            tables.clear()
        if self.path is not None:
            duck.execute("CHECKPOINT")
        if later:
            raise Moved("the register changed while its snapshot was read; try again")


# ----------------------------------------------------------------------------- reading


def read_head(conn: Connection) -> Head:
    """The audit head, schema revision and active policy version `conn` sees."""
    row = conn.execute(
        text("SELECT seq, hash FROM audit_entries ORDER BY seq DESC LIMIT 1")
    ).first()
    revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    active = conn.execute(text("SELECT id FROM policy_versions WHERE active")).scalar()
    return Head(
        int(row[0]) if row else 0,
        str(row[1]) if row else "",
        str(revision or ""),
        int(active or 0),
    )


def _hash_at(conn: Connection, seq: int) -> str:
    if seq == 0:
        return ""
    found = conn.execute(text("SELECT hash FROM audit_entries WHERE seq = :s"), {"s": seq})
    return str(found.scalar() or "")


def _changes(conn: Connection, since: int) -> _Changes:
    """What the entries after `since` changed (entries that change nothing are not read)."""
    ignored = ", ".join(f"'{a}'" for a in IGNORED)
    entries = conn.execute(
        text(
            "SELECT action, subject_id, payload FROM audit_entries "
            f"WHERE seq > :since AND action NOT IN ({ignored}) ORDER BY seq"
        ),
        {"since": since},
    )
    out = _Changes()
    for action, subject_id, payload in entries:
        if action in BY_SUBJECT and subject_id:
            out.subjects.add(str(subject_id))
            continue
        body = json.loads(payload)
        if action == "records.filed" and "first_record_id" in body and "last_record_id" in body:
            out.ranges.append((int(body["first_record_id"]), int(body["last_record_id"])))
            out.new_records += int(body.get("stored", 0))
        elif action == "subjects.imported" and "batch_id" in body:
            out.batches.add(int(body["batch_id"]))
        elif action == "policy.activated" and "version_id" in body:
            out.activations.append(
                (int(body["version_id"]), [str(c) for c in body.get("ends_recomputed", [])])
            )
        else:
            out.full = f"audit entry {action!r}"
            break
    return out


def _stored_policy(conn: Connection, version_id: int) -> Policy:
    from credo.domain.policy_load import load_policy

    found = conn.execute(
        text("SELECT text FROM policy_versions WHERE id = :v"), {"v": version_id}
    ).scalar_one()
    return load_policy(str(found), "stored policy")


def _rows_by_subject(conn: Connection, table: str, subjects: list[str]) -> list[Any]:
    rows: list[Any] = []
    where = " AND kind = 'objection'" if table == "cases" else ""
    for chunk in _chunks(subjects):
        names = ", ".join(f":s{n}" for n in range(len(chunk)))
        rows += conn.execute(
            text(f"SELECT {_COLUMNS[table]} FROM {table} WHERE subject_id IN ({names}){where}"),
            {f"s{n}": s for n, s in enumerate(chunk)},
        ).all()
    return rows


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def _values(chunk: list[str]) -> str:
    return "(" + ", ".join("'" + s.replace("'", "''") + "'" for s in chunk) + ")"


def _merged(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for first, last in sorted(ranges):
        if out and first <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], last))
        else:
            out.append((first, last))
    return out


def _unique(rows: list[Any]) -> list[Any]:
    return list({int(r[0]): r for r in rows}.values())


def _load(duck: Any, table: str, rows: Sequence[Any], *, replace: bool) -> None:
    """Insert rows read through SQLAlchemy; `replace` drops the rows with the same ids."""
    if not rows:
        return
    import pyarrow as pa

    names = [c.strip() for c in _COLUMNS[table].split(",")]
    arrow = pa.table({name: pa.array([r[i] for r in rows]) for i, name in enumerate(names)})
    duck.register("credo_delta", arrow)
    try:
        if replace:
            duck.execute(f"DELETE FROM {table} WHERE id IN (SELECT id FROM credo_delta)")
        duck.execute(f"INSERT INTO {table} {_typed(table, 'credo_delta', empty_is_null=False)}")
    finally:
        duck.unregister("credo_delta")


def _label(duck: Any, head: Head) -> None:
    duck.execute("DELETE FROM credo_snapshot")
    duck.execute(
        "INSERT INTO credo_snapshot VALUES (?, ?, ?, ?, ?)",
        [FORMAT, head.seq, head.hash, head.revision, head.policy_version],
    )


def _read_tables(engine: Engine, at: int) -> tuple[dict[str, Any], Head, bool]:
    """The three tables as Arrow, the head they were read at, and whether anything that
    changes scoring was written after `at` (the caller's head) before they were read.

    The records come in `PARTS` id ranges, each on its own connection and thread (the
    driver reads without the GIL): each part is the register at some head between the
    first head read and the last, so the parts fit together when no entry between those
    heads changes scoring (inquiries may come and go).
    """
    sqlite = engine.dialect.name == "sqlite"
    queries = _SQLITE if sqlite else {n: f"SELECT {c} {_FROM[n]}" for n, c in _COLUMNS.items()}
    for _ in range(RETRIES):
        tables: dict[str, Any] = {}
        with _connect(engine) as adbc, adbc.cursor() as cur:
            if not sqlite:
                cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            first = _adbc_head(cur)
            cur.execute("SELECT COALESCE(MIN(id), 0), COALESCE(MAX(id), 0), COUNT(*) FROM records")
            low, high, count = (int(v) for v in cur.fetchone())
            ranges = _id_ranges(low, high, PARTS if count >= PART_ROWS else 1)
            where = [f" WHERE id BETWEEN {a} AND {b}" for a, b in ranges]
            with ThreadPoolExecutor(max(1, len(where) - 1)) as pool:
                helpers = [
                    pool.submit(_read_part, engine, queries["records"] + w) for w in where[1:]
                ]
                parts = []
                for name, sql in queries.items():
                    if name == "records":
                        cur.execute(sql + where[0])
                        parts.append(cur.fetch_arrow_table())
                    else:
                        cur.execute(sql)
                        tables[name] = cur.fetch_arrow_table()
                heads = [_adbc_head(cur)]
                for helper in helpers:
                    part, head = helper.result()
                    parts.append(part)
                    heads.append(head)
            adbc.rollback()
        last = max(heads, key=lambda h: h.seq)
        tables["records"] = parts[0] if len(parts) == 1 else _concat(parts)
        with _connect(engine) as adbc, adbc.cursor() as cur:
            # Inquiries may be appended while the tables are read: only the entries that
            # change scoring make the read inconsistent, or later than the caller's head.
            torn = _relevant_after(cur, first.seq, last.seq)
            later = _relevant_after(cur, at, last.seq)
            adbc.rollback()
        if not torn and all(h.revision == first.revision for h in heads):
            return tables, last, later
        tables.clear()
    raise RuntimeError("the register kept changing while its snapshot was read; try again")


PARTS = 2  # connections reading the records at once (the machine this was tuned on: 2 cores)
PART_ROWS = 200_000  # fewer records are read on one connection


def _id_ranges(low: int, high: int, parts: int) -> list[tuple[int, int]]:
    """`parts` consecutive id ranges covering low..high (the first from -inf, the last to
    +inf in effect: ids outside were not there when the bounds were read)."""
    if parts <= 1 or high - low < parts:
        return [(-(2**62), 2**62)]
    step = (high - low + 1) // parts
    cuts = [low + step * n for n in range(1, parts)]
    starts = [-(2**62), *cuts]
    ends = [c - 1 for c in cuts] + [2**62]
    return list(zip(starts, ends, strict=True))


def _read_part(engine: Engine, sql: str) -> tuple[Any, Head]:
    """One range of records on a connection of its own, and the head it saw after."""
    with _connect(engine) as adbc, adbc.cursor() as cur:
        if engine.dialect.name != "sqlite":
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        cur.execute(sql)
        table = cur.fetch_arrow_table()
        head = _adbc_head(cur)
        adbc.rollback()
    return table, head


def _concat(parts: list[Any]) -> Any:
    import pyarrow as pa

    # A part whose first batch had only NULLs in a column may type it differently: the
    # first part's schema wins (the values cast to it).
    schema = parts[0].schema
    return pa.concat_tables([p if p.schema == schema else p.cast(schema) for p in parts])


def _relevant_after(cur: Any, since: int, until: int) -> bool:
    if until <= since:
        return False
    ignored = ", ".join(f"'{a}'" for a in IGNORED)
    cur.execute(
        f"SELECT COUNT(*) FROM audit_entries WHERE seq > {int(since)} AND seq <= {int(until)} "
        f"AND action NOT IN ({ignored})"
    )
    return int(cur.fetchone()[0]) > 0


def _adbc_head(cur: Any) -> Head:
    cur.execute("SELECT seq, hash FROM audit_entries ORDER BY seq DESC LIMIT 1")
    row = cur.fetchone()
    cur.execute("SELECT version_num FROM alembic_version")
    revision = cur.fetchone()
    cur.execute("SELECT id FROM policy_versions WHERE active")
    active = cur.fetchone()
    return Head(
        int(row[0]) if row else 0,
        str(row[1]) if row else "",
        str(revision[0]) if revision else "",
        int(active[0]) if active else 0,
    )


def _connect(engine: Engine) -> Any:
    url = engine.url
    if engine.dialect.name == "sqlite":
        import adbc_driver_sqlite.dbapi

        path = quote(str(url.database), safe="/")
        return adbc_driver_sqlite.dbapi.connect(f"file:{path}?mode=ro")
    import adbc_driver_postgresql.dbapi

    uri = url.set(drivername="postgresql").render_as_string(hide_password=False)
    return adbc_driver_postgresql.dbapi.connect(uri)


# ----------------------------------------------------------------------------- holding


_LOCK = threading.Lock()  # guards the two dicts below
_locks: dict[str, threading.Lock] = {}
_memory: dict[str, Any] = {}  # registers without a home: one in-memory snapshot each


def snapshot_path(engine: Engine, directory: Path) -> Path:
    """Where the snapshot of this database is kept under `directory`."""
    url = engine.url.render_as_string(hide_password=True)
    return directory / f"preview-snapshot-{hashlib.sha256(url.encode()).hexdigest()[:16]}.duckdb"


@contextlib.contextmanager
def opened(engine: Engine, directory: Path | None) -> Iterator[Snapshot]:
    """The database's snapshot, held by this preview alone until it is done with it.

    Take it before the preview's read transaction begins: a preview that held it before
    saw an earlier or equal head, so refreshing only ever moves the snapshot forward.
    Previews in other processes (API workers, the command line) wait on a lock file.
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
