"""Reading the operational store for the preview's DuckDB snapshot (preview_duckdb).

Two ways in. Afresh: the scoring columns of records, objections and subjects through ADBC
(Arrow straight from SQLite or from PostgreSQL's binary COPY, no Python rows), records in
id ranges on parallel connections. Incrementally: the audit entries after the snapshot's
head say what changed (`changes`), and only those rows are read, as the caller's own
transaction sees them, so the snapshot becomes exactly what that transaction sees:

- `records.filed`: the filed id range its entry names (ids are drawn before the entry is
  appended, so a range committed late is still found), streamed through ADBC on a
  connection that must see the same audit head (`filed_records`);
- `subjects.imported`: the subjects of the batch its entry names;
- objections and case decisions (`objection.filed`, `*.decided`): every record version and
  objection of the entry's subject (a decision revokes, repairs or corrects all versions of
  one reference, and all versions of a reference belong to one subject);
- `policy.activated`: the version it activated and the categories whose ends it rewrote;
- writes that cannot change a score (`IGNORED`: inquiries, rescoring, partitioning, keys,
  users, exports, repair and review requests) are not even read.

Any other action asks for a fresh read.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.engine import Connection

from credo.domain.policy import Policy

# Audit actions that never change a scoring column of records, cases or subjects.
IGNORED = (
    "inquiries.logged",
    "inquiry.made",
    "register.rescored",
    "register.swept",
    "register.partitioned",  # moves rows between tables, changes none
    "file.exported",
    "key.created",
    "key.revoked",
    "user.added",
    "repair.filed",  # a repair request is a case of kind 'repair': only its decision counts
    "review.filed",
)
# Audit actions whose entry names the subject all of whose records and objections may change.
BY_SUBJECT = ("objection.filed", "objection.decided", "repair.decided", "review.decided")


CHUNK = 500  # ids per IN list


COLUMNS = {
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
SPARSE = ("counts_from", "counts_until", "repaired_on")
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


RETRIES = 3


@dataclass(frozen=True)
class Head:
    """The audit chain's head as one transaction sees it, and the schema revision."""

    seq: int
    hash: str
    revision: str
    policy_version: int


@dataclass
class Changes:
    """What the audit entries after a snapshot's head changed."""

    ranges: list[tuple[int, int]] = field(default_factory=list)
    subjects: set[str] = field(default_factory=set)
    batches: set[int] = field(default_factory=set)
    activations: list[tuple[int, list[str]]] = field(default_factory=list)
    full: str | None = None  # why the tables must be read afresh

    @property
    def touched(self) -> bool:
        """Whether any scoring column changed (else only the label moves)."""
        return bool(self.ranges or self.subjects or self.batches or self.activations)


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


def hash_at(conn: Connection, seq: int) -> str:
    if seq == 0:
        return ""
    found = conn.execute(text("SELECT hash FROM audit_entries WHERE seq = :s"), {"s": seq})
    return str(found.scalar() or "")


def changes(conn: Connection, since: int) -> Changes:
    """What the entries after `since` changed (entries that change nothing are not read)."""
    ignored = ", ".join(f"'{a}'" for a in IGNORED)
    entries = conn.execute(
        text(
            "SELECT action, subject_id, payload FROM audit_entries "
            f"WHERE seq > :since AND action NOT IN ({ignored}) ORDER BY seq"
        ),
        {"since": since},
    )
    out = Changes()
    for action, subject_id, payload in entries:
        if action in BY_SUBJECT and subject_id:
            out.subjects.add(str(subject_id))
            continue
        body = json.loads(payload)
        if action == "records.filed" and "first_record_id" in body and "last_record_id" in body:
            out.ranges.append((int(body["first_record_id"]), int(body["last_record_id"])))
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


def changed_rows(conn: Connection, changes: Changes) -> tuple[list[Any], list[Any], list[Any]]:
    """The record, objection and subject rows (COLUMNS) the changes name, as `conn` sees
    them: every row of the touched subjects and the imported batches. The filed id ranges
    are read apart, as Arrow (`filed_records`)."""
    subjects = sorted(changes.subjects)
    record_rows = rows_by_subject(conn, "records", subjects)
    case_rows = rows_by_subject(conn, "cases", subjects)
    subject_rows: list[Any] = []
    if changes.batches:
        ids = ", ".join(str(int(b)) for b in sorted(changes.batches))
        sql = f"SELECT {COLUMNS['subjects']} FROM subjects WHERE batch_id IN ({ids})"
        subject_rows = list(conn.execute(text(sql)).all())
    return record_rows, case_rows, subject_rows


class Moved(RuntimeError):
    """The register moved past the head a read was meant to see: retry in a new transaction."""


# The filed records of id ranges; SQLite's sparse dates as '' (one type from the first row).
_FILED = {
    "sqlite": "SELECT id, subject_id, category, decided_on, ends_on, revoked, "
    "COALESCE(counts_from, '') AS counts_from, COALESCE(counts_until, '') AS counts_until, "
    "COALESCE(repaired_on, '') AS repaired_on FROM records",
    "postgresql": f"SELECT {COLUMNS['records']} FROM records",
}


@contextmanager
def filed_records(engine: Engine, at: Head) -> Iterator[Callable[[int, int], Any]]:
    """A reader of the records whose ids lie in a range, `read(first, last)`, each range as a
    stream of Arrow batches: through ADBC on a connection of its own, in one read
    transaction that sees the register exactly as it stood at the head `at`.

    The connection reads the chain's head first, in the same read transaction as the rows:
    every write appends its entry under the chain's lock, held until it commits, so the
    same head means the same committed writes. Another head raises Moved. Streamed, the
    rows are never all in memory: an import's own catch-ups read millions this way, a
    slice of ids at a time.
    """
    sqlite = engine.dialect.name == "sqlite"
    select = _FILED["sqlite" if sqlite else "postgresql"]
    with _connect(engine) as adbc, adbc.cursor() as cur:
        if not sqlite:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        seen = _adbc_head(cur)
        if (seen.seq, seen.hash, seen.revision) != (at.seq, at.hash, at.revision):
            adbc.rollback()
            raise Moved(f"the register is at audit entry {seen.seq}, not {at.seq}; try again")

        def read(first: int, last: int) -> Any:
            cur.execute(f"{select} WHERE id BETWEEN {int(first)} AND {int(last)}")
            return cur.fetch_record_batch()

        try:
            yield read
        finally:
            adbc.rollback()


def at_most(conn: Connection, table: str, rows: int) -> bool:
    """Whether `table` holds at most `rows` rows (reads no more than one past them)."""
    found = conn.execute(text(f"SELECT 1 FROM {table} LIMIT 1 OFFSET {int(rows)}")).first()
    return found is None


def stored_policy(conn: Connection, version_id: int) -> Policy:
    from credo.domain.policy_load import load_policy

    found = conn.execute(
        text("SELECT text FROM policy_versions WHERE id = :v"), {"v": version_id}
    ).scalar_one()
    return load_policy(str(found), "stored policy")


def rows_by_subject(conn: Connection, table: str, subjects: list[str]) -> list[Any]:
    rows: list[Any] = []
    where = " AND kind = 'objection'" if table == "cases" else ""
    for chunk in chunks(subjects):
        names = ", ".join(f":s{n}" for n in range(len(chunk)))
        rows += conn.execute(
            text(f"SELECT {COLUMNS[table]} FROM {table} WHERE subject_id IN ({names}){where}"),
            {f"s{n}": s for n, s in enumerate(chunk)},
        ).all()
    return rows


def chunks(items: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def merged(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for first, last in sorted(ranges):
        if out and first <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], last))
        else:
            out.append((first, last))
    return out


def read_tables(
    engine: Engine, at: int, subjects: Callable[[Iterator[Any]], None]
) -> tuple[dict[str, Any], Head, bool]:
    """The records and objections as Arrow, the head they were read at, and whether
    anything that changes scoring was written after `at` (the caller's head) before they
    were read. The subjects are handed to `subjects` as they come, in the same read
    transaction, as Arrow tables of `SUBJECT_ROWS` rows: a million subjects are 70 MB as
    one table. A read overtaken by a write is made again, and `subjects` called again: it
    must replace what the earlier attempt handed it.

    The records come in `PARTS` id ranges, each on its own connection and thread (the
    driver reads without the GIL): each part is the register at some head between the
    first head read and the last, so the parts fit together when no entry between those
    heads changes scoring (inquiries may come and go).
    """
    sqlite = engine.dialect.name == "sqlite"
    queries = _SQLITE if sqlite else {n: f"SELECT {c} {_FROM[n]}" for n, c in COLUMNS.items()}
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
                    elif name == "subjects":
                        if not sqlite:  # batches of 90,000 subjects, not 350,000
                            cur.adbc_statement.set_options(**{BATCH_HINT: str(4 << 20)})
                        cur.execute(sql)
                        subjects(_grouped(cur.fetch_record_batch(), SUBJECT_ROWS))
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


SUBJECT_ROWS = 100_000  # subjects handed on at a time by a fresh read
BATCH_HINT = "adbc.postgresql.batch_size_hint_bytes"  # the driver's batches (16 MB by default)
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


def _grouped(reader: Any, rows: int) -> Iterator[Any]:
    """The reader's rows as tables of `rows` rows (the last may be short), without copying
    them. The stream is read to its end (it must be drained before the cursor's next
    statement)."""
    import pyarrow as pa

    held: list[Any] = []
    count = 0
    for batch in reader:
        held.append(batch)
        count += batch.num_rows
        while count >= rows:
            table = pa.Table.from_batches(held, schema=reader.schema)
            yield table.slice(0, rows)
            rest = table.slice(rows)
            held, count = rest.to_batches(), rest.num_rows
    if count:
        yield pa.Table.from_batches(held, schema=reader.schema)


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
    if engine.dialect.name == "sqlite":  # never beside this process's own connections
        from credo.store import sqlite_reader

        return sqlite_reader.connect(str(url.database))
    import adbc_driver_postgresql.dbapi  # type: ignore[import-untyped]

    uri = url.set(drivername="postgresql").render_as_string(hide_password=False)
    return adbc_driver_postgresql.dbapi.connect(uri)
