"""Queries and bulk writes on the register's tables, in the caller's transaction."""

from __future__ import annotations

import itertools
import json
import operator
import re
import sqlite3
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import bindparam, func, insert, select, text, update
from sqlalchemy.engine import Connection

from credo.domain.errors import NoActivePolicyError, NotFoundError
from credo.domain.records import Dispute, RecordFacts
from credo.domain.scoring import Standing
from credo.store.db import is_sqlite
from credo.store.tables import (
    batches,
    policy_versions,
    records,
    standings,
    subjects,
)

CHUNK = 5_000


def active_policy_row(conn: Connection) -> tuple[int, str]:
    """The active policy version's id and text."""
    row = conn.execute(
        select(policy_versions.c.id, policy_versions.c.text).where(policy_versions.c.active)
    ).first()
    if row is None:
        raise NoActivePolicyError("no policy is active yet: run `credo policy activate FILE` first")
    return int(row.id), str(row.text)


def new_batch(
    conn: Connection,
    kind: str,
    source: str,
    at: datetime,
    authority_id: str | None = None,
    batch_id: int | None = None,
) -> int:
    """Open a batch row that stored rows point to (`batch_id`: one drawn beforehand)."""
    values: dict[str, Any] = {
        "kind": kind,
        "source": source[:1000],
        "authority_id": authority_id,
        "created_at": at,
    }
    if batch_id is not None:
        values["id"] = batch_id
    result = conn.execute(insert(batches).values(**values))
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


_UNIT = "\x1f"  # the unit separator, never in a validated id


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), CHUNK):
        yield items[i : i + CHUNK]


def _many(conn: Connection, values: Iterable[str]) -> tuple[str, Any]:
    """One bind parameter holding a whole set of strings: json_each on SQLite, ANY on PG."""
    if is_sqlite(conn):
        return "(SELECT value FROM json_each(:many))", json.dumps(sorted(set(values)))
    array, many = _pg_array(values)
    return f"ANY({array})", many


def _pg_array(values: Iterable[str]) -> tuple[str, Any]:
    """PostgreSQL: a set of strings as an array expression over the bind parameter :many."""
    items = sorted(set(values))
    if not any(_UNIT in item for item in items):
        # One text the server splits: dumping a list as an array costs the client more than
        # the lookups cost the server (validated ids and references hold no control chars).
        return "string_to_array(:many, chr(31))", _UNIT.join(items)
    return "CAST(:many AS text[])", items


def existing_subjects(conn: Connection, ids: Iterable[str]) -> dict[str, str]:
    """Of these subject ids, those registered, with their row hashes."""
    clause, many = _many(conn, ids)
    op = "IN" if is_sqlite(conn) else "="
    rows = conn.execute(
        text(f"SELECT id, row_hash FROM subjects WHERE id {op} {clause}"), {"many": many}
    )
    return {r[0]: r[1] for r in rows}


def registered_subjects(conn: Connection, ids: Iterable[str]) -> set[str]:
    """Of these subject ids, those registered."""
    clause, many = _many(conn, ids)
    op = "IN" if is_sqlite(conn) else "="
    rows = conn.execute(text(f"SELECT id FROM subjects WHERE id {op} {clause}"), {"many": many})
    return set(rows.scalars())


def unregistered_subjects(db: sqlite3.Connection, ids: set[str]) -> set[str]:
    """SQLite, on a connection of the driver's own (an import's worker process opens one
    read-only): which of these subject ids are not registered."""
    found = db.execute(
        "SELECT id FROM subjects WHERE id IN (SELECT value FROM json_each(?))",
        (json.dumps(sorted(ids)),),
    )
    return ids.difference(row[0] for row in found)


def existing_references(
    conn: Connection, authority_id: str, references: Iterable[str]
) -> dict[str, str]:
    """Of these references, those the authority already filed, with their first row hash."""
    clause, many = _many(conn, references)
    op = "IN" if is_sqlite(conn) else "="
    if _keys_in_record_refs(conn):
        # Partitioned by subject: the filing key is record_refs' primary key, and each match
        # reads one partition of records (by id and subject), not all of them.
        sql = (
            "SELECT k.reference, r.row_hash FROM record_refs k JOIN records r "
            "ON r.id = k.record_id AND r.subject_id = k.subject_id "
            f"WHERE k.authority_id = :a AND k.version = 1 AND k.reference {op} {clause}"
        )
    else:
        sql = (
            "SELECT reference, row_hash FROM records WHERE authority_id = :a AND version = 1 "
            f"AND reference {op} {clause}"
        )
    rows = conn.execute(text(sql), {"a": authority_id, "many": many})
    return {r[0]: r[1] for r in rows}


def _keys_in_record_refs(conn: Connection) -> bool:
    """Whether the register is partitioned by subject (`credo partition`), so that filing
    keys live in `record_refs` (one catalog lookup per batch of references)."""
    if is_sqlite(conn):
        return False
    return bool(conn.execute(text("SELECT to_regclass('record_refs') IS NOT NULL")).scalar())


def insert_rows(
    conn: Connection,
    table: str,
    columns: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
    constants: dict[str, Any] | None = None,
) -> None:
    """Bulk insert: executemany on SQLite, COPY on PostgreSQL.

    `constants` are columns with one value for every row (ids and timestamps credo made).
    """
    if not rows:
        return
    extra = constants or {}
    names = ", ".join([*columns, *extra])
    if is_sqlite(conn):
        marks = ", ".join(["?"] * len(columns) + [_sql_literal(v) for v in extra.values()])
        conn.exec_driver_sql(f"INSERT INTO {table} ({names}) VALUES ({marks})", list(rows))
        return
    raw = conn.connection.driver_connection
    assert raw is not None
    tail = tuple(extra.values())
    with raw.cursor() as cur, cur.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
        if tail:
            for row in rows:
                copy.write_row(row + tail)
        else:
            for row in rows:
                copy.write_row(row)


def copy_escape(value: str) -> str:
    """A text value escaped for PostgreSQL COPY text.

    Four `str.replace` calls: each returns its input untouched when there is nothing to
    replace, which is nearly always, and is five times quicker than one `str.translate`.
    """
    return (
        value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    )


_COPY_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "\\": "\\"}
_COPY_ESCAPED = re.compile(r"\\(.)")


def copy_unescape(value: str) -> str:
    """The text `copy_escape` escaped."""
    return _COPY_ESCAPED.sub(lambda m: _COPY_ESCAPES.get(m.group(1), m.group(1)), value)


def copy_line(row: tuple[Any, ...]) -> str:
    """A row as PostgreSQL COPY text: tab-separated, backslash-escaped, \\N for NULL.

    Only text is escaped: numbers and dates print no tab, newline or backslash.
    """
    out: list[str] = []
    for value in row:
        if value is None:
            out.append("\\N")
        elif isinstance(value, str):  # copy_escape, inlined: this runs for every field
            out.append(
                value.replace("\\", "\\\\")
                .replace("\t", "\\t")
                .replace("\n", "\\n")
                .replace("\r", "\\r")
            )
        elif isinstance(value, bool):
            out.append("t" if value else "f")
        else:
            out.append(str(value))
    return "\t".join(out)


def copy_text(conn: Connection, table: str, columns: Sequence[str], data: str) -> None:
    """PostgreSQL: COPY rows already formatted as COPY text (tab-separated lines)."""
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        copy.write(data)


BIG_LOAD = 50_000  # rows: after a load this big, the planner's statistics are refreshed


def refresh_statistics(conn: Connection, *tables: str) -> None:
    """PostgreSQL: ANALYZE tables a big load just grew, before anything plans queries on
    them. Without it, a register loaded in one go has no statistics at all (autovacuum
    has not caught up): over 10M records the closing rescore's list causes were still
    running after 4 minutes, a step of 1.8 s at 2M records. SQLite plans without
    statistics and needs none."""
    if is_sqlite(conn):
        return
    for table in tables:
        conn.execute(text(f"ANALYZE {table}"))


# Whether a table's statistics are stale by autovacuum's own rule (more rows changed since
# the last ANALYZE than 50 plus a tenth of the table); a partitioned table is judged whole,
# over its partitions, as its ANALYZE covers them all.
_STALE = text(
    "SELECT COALESCE(sum(s.n_mod_since_analyze) > 50 + 0.1 * sum(GREATEST(c.reltuples, 0)), "
    "false) FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid "
    "WHERE c.relkind <> 'p' AND (s.relid = to_regclass(:t) OR s.relid IN "
    "(SELECT inhrelid FROM pg_inherits WHERE inhparent = to_regclass(:t)))"
)


def refresh_stale_statistics(conn: Connection, *tables: str) -> list[str]:
    """PostgreSQL: ANALYZE those of `tables` that autovacuum would analyze now; returns them.

    Set-based statements join these tables against thousands of subjects at once. Where
    autovacuum is off, or has not caught up after a big change, a table that was never
    analyzed looks nearly empty to the planner, which then loops over the other side once
    per row (a rescore on a later day, 42k of 200k subjects changing lists: one UPDATE of
    list_periods ran 101 s). The check is one catalog query; SQLite needs none.
    """
    if is_sqlite(conn):
        return []
    stale = [t for t in tables if conn.execute(_STALE, {"t": t}).scalar_one()]
    for table in stale:
        conn.execute(text(f"ANALYZE {table}"))
    return stale


def _sql_literal(value: Any) -> str:
    """A constant credo generated itself (an id or a timestamp), as an SQL literal."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def newest_record_id(conn: Connection) -> int:
    """The highest record id so far (0 for none): a batch's rows all come after it."""
    return int(conn.execute(select(func.coalesce(func.max(records.c.id), 0))).scalar_one())


def new_record_ids(conn: Connection, count: int) -> list[int]:
    """`count` fresh record ids, ascending, for rows this transaction is about to insert.

    PostgreSQL draws them from the table's sequence (safe beside concurrent filers); SQLite
    has one writer at a time, so the ids after the highest stored one are free.
    """
    if count <= 0:
        return []
    if is_sqlite(conn):
        first = newest_record_id(conn) + 1
        return list(range(first, first + count))
    low, high, spread = conn.execute(text(_DRAW_IDS), {"n": count}).one()
    return _drawn(low, high, spread)


# Alone on the sequence (the usual case) the ids are consecutive, and two numbers say
# which; beside another filer they interleave and come back one by one.
_DRAW_IDS = (
    "SELECT min(v), max(v), CASE WHEN max(v) - min(v) + 1 = count(*) THEN NULL "
    "ELSE array_agg(v ORDER BY v) END "
    "FROM (SELECT nextval('records_id_seq') AS v FROM generate_series(1, :n)) drawn"
)


def _drawn(low: Any, high: Any, spread: Any) -> list[int]:
    """The ids `_DRAW_IDS` drew (none when it drew none)."""
    if spread is not None:
        return [int(v) for v in spread]
    return [] if low is None else list(range(int(low), int(high) + 1))


def reserve_records(
    conn: Connection, subject_ids: Iterable[str], count: int
) -> tuple[set[str], int, list[int]]:
    """PostgreSQL, one round trip: which of these subjects are not registered, a fresh batch
    id and `count` fresh record ids, ascending (as `new_record_ids` draws them).

    Sequences are not transactional, so any connection can draw them; the caller makes sure
    no rescore can run before the rows that use them are committed (see
    credo.services.import_writer).
    """
    wanted = set(subject_ids)
    array, many = _pg_array(wanted)
    known, batch_id, low, high, spread = conn.execute(
        text(
            f"SELECT (SELECT array_agg(id) FROM subjects WHERE id = ANY({array})), "
            f"nextval(pg_get_serial_sequence('batches', 'id')), ids.* FROM ({_DRAW_IDS}) ids"
        ),
        {"many": many, "n": count},
    ).one()
    return wanted.difference(known or ()), int(batch_id), _drawn(low, high, spread)


def subject_row(conn: Connection, subject_id: str) -> Any:
    """The subject's registered details, or NotFoundError."""
    row = conn.execute(select(subjects).where(subjects.c.id == subject_id)).first()
    if row is None:
        raise NotFoundError(f"subject {subject_id!r} is not registered")
    return row


FACTS_COLUMNS = (
    "r.id, r.authority_id, r.reference, r.category, r.decided_on, r.revoked, "
    "r.repaired_on, r.counts_from, r.counts_until, c.filed_on, c.decided_on"
)
FACTS_JOIN = "records r LEFT JOIN cases c ON c.record_id = r.id AND c.kind = 'objection'"
_FACTS = f"SELECT {FACTS_COLUMNS} FROM {FACTS_JOIN} WHERE r.subject_id = {{mark}} ORDER BY r.id"
_FACTS_SQLITE = _FACTS.format(mark="?")
_FACTS_PG = _FACTS.format(mark="%s")


def _day(value: Any) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(value)


def record_facts(conn: Connection, subject_id: str) -> list[RecordFacts]:
    """Every stored version of the subject's records, with its objections, as scored.

    One indexed query on the driver's own cursor (SQLAlchemy's result machinery costs more
    than the query on a warm cache): the path of every in-process standing lookup.
    """
    sql = _FACTS_SQLITE if is_sqlite(conn) else _FACTS_PG
    cursor = conn.connection.cursor()  # the driver's, in this connection's transaction
    try:
        cursor.execute(sql, (subject_id,))
        return facts_from_rows(cursor.fetchall())
    finally:
        cursor.close()


FACTS_CHUNK = 500  # subjects per statement of `record_facts_of` (SQLite before 3.32: 999 values)


def record_facts_of(conn: Connection, subject_ids: Sequence[str]) -> dict[str, list[RecordFacts]]:
    """`record_facts` of many subjects, a few hundred per statement instead of one each (a
    batch check); a subject without records maps to an empty list."""
    found: dict[str, list[RecordFacts]] = {subject_id: [] for subject_id in subject_ids}
    wanted = list(found)
    statement = text(
        f"SELECT r.subject_id, {FACTS_COLUMNS} FROM {FACTS_JOIN} "
        "WHERE r.subject_id IN :ids ORDER BY r.subject_id, r.id"
    ).bindparams(bindparam("ids", expanding=True))
    for start in range(0, len(wanted), FACTS_CHUNK):
        rows = conn.execute(statement, {"ids": wanted[start : start + FACTS_CHUNK]}).all()
        for subject_id, group in itertools.groupby(rows, key=operator.itemgetter(0)):
            found[subject_id] = facts_from_rows(group, 1)
    return found


def facts_from_rows(rows: Iterable[Sequence[Any]], offset: int = 0) -> list[RecordFacts]:
    """RecordFacts from rows holding FACTS_COLUMNS from column `offset` on, ordered by record
    id (a record with two objections comes twice); rows without a record are skipped."""
    facts: list[RecordFacts] = []
    last_id = None
    for full in rows:
        row = full[offset:] if offset else full
        if row[0] is None:  # an outer join that found no record
            continue
        disputes: tuple[Dispute, ...] = ()
        if row[9] is not None:
            disputes = (Dispute(_day(row[9]), _day(row[10])),)  # type: ignore[arg-type]
        if row[0] == last_id:  # a further objection on the same record version
            prev = facts[-1]
            facts[-1] = RecordFacts(
                prev.authority,
                prev.reference,
                prev.category,
                prev.decided_on,
                prev.repaired_on,
                prev.revoked,
                prev.disputes + disputes,
                prev.counts_from,
                prev.counts_until,
            )
            continue
        last_id = row[0]
        facts.append(
            RecordFacts(
                row[1],
                row[2],
                row[3],
                _day(row[4]),  # type: ignore[arg-type]
                _day(row[6]),
                bool(row[5]),
                disputes,
                _day(row[7]),
                _day(row[8]),
            )
        )
    return facts


def subject_records(conn: Connection, subject_id: str) -> list[Any]:
    """Every stored record row of the subject, oldest first."""
    return list(
        conn.execute(
            select(records)
            .where(records.c.subject_id == subject_id)
            .order_by(
                records.c.decided_on, records.c.authority_id, records.c.reference, records.c.version
            )
        )
    )


def save_standing(conn: Connection, standing: Standing, policy_version_id: int) -> None:
    """Store one subject's current standing (insert or replace), with the first day a record
    it counts stops counting (where the sweep looks for standings that ends changed)."""
    values = {
        "as_of": standing.as_of,
        "policy_version_id": policy_version_id,
        "score": standing.score,
        "grade": standing.grade,
        "lists": ",".join(standing.lists),
        "measures": ",".join(standing.measures),
        "next_end": standing.next_end,
    }
    done = conn.execute(
        update(standings).where(standings.c.subject_id == standing.subject_id).values(**values)
    )
    if not done.rowcount:
        conn.execute(insert(standings).values(subject_id=standing.subject_id, **values))


def stored_standing(conn: Connection, subject_id: str) -> Any:
    """The stored standing row of a subject, or None."""
    return conn.execute(select(standings).where(standings.c.subject_id == subject_id)).first()


def pending_through(conn: Connection) -> int:
    """The highest record id already reflected in stored standings."""
    value = conn.execute(text("SELECT scored_through FROM register_state WHERE id = 1")).scalar()
    return int(value or 0)


def today_param(conn: Connection, day: date) -> date | str:
    """A date parameter as this driver wants it."""
    return day.isoformat() if is_sqlite(conn) else day
