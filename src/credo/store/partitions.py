"""PostgreSQL: the subject-keyed tables hash-partitioned by subject (docs/scale.md).

`partition_register` turns each table about a person into `PARTITION BY HASH (subject_id)`
with one modulus for all of them, so that one subject's rows sit in partitions of the same
number and a standing lookup prunes to one partition of each table. It runs in the
caller's transaction and copies the rows across, so it is all or nothing, on an empty
register or a loaded one.

What changes with it, table by table, is read from PostgreSQL's catalog rather than
written out again here, so the migrations stay the one description of the schema:
columns, defaults, NOT NULL and CHECK constraints come across with `LIKE`; every index is
recreated from its definition; a primary key gains `subject_id` when it lacks it (a
partitioned table's unique keys must hold the partition key); sequences stay with their
columns. Two things cannot stay as they were:

- the global key of a filing, `records (authority_id, reference, version)`, does not hold
  `subject_id`. It moves to `record_refs`, an unpartitioned table keyed by it and filled
  by a statement-level trigger on `records` in the filing's own statement, so a second
  filing of a reference still fails inside the database; `records` keeps a plain index on
  the three columns for the filing's lookups.
- a foreign key to a table whose key gained `subject_id` (`cases.record_id` to
  `records.id`) has nothing unique to point to any more. It is dropped, and
  `credo audit verify` checks that reference as it checks the other hot tables'.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Connection

from credo.domain.errors import ConflictError, ValidationError
from credo.store.db import is_sqlite

# Each partitioned table and its partition key. Policy versions, API keys, users, batches,
# attachments and the measures feed stay unpartitioned (small, or read by authority).
TABLES: tuple[tuple[str, str], ...] = (
    ("subjects", "id"),
    ("records", "subject_id"),
    ("standings", "subject_id"),
    ("inquiries", "subject_id"),
    ("notices", "subject_id"),
    ("cases", "subject_id"),
    ("list_periods", "subject_id"),
    ("measure_periods", "subject_id"),
)
MAX_PARTITIONS = 1024

RECORD_REFS = (
    "CREATE TABLE record_refs (authority_id VARCHAR(64) NOT NULL, "
    "reference VARCHAR(128) NOT NULL, version INTEGER NOT NULL, "
    "subject_id VARCHAR(64) NOT NULL, record_id BIGINT NOT NULL, "
    "CONSTRAINT pk_record_refs PRIMARY KEY (authority_id, reference, version))"
)
RECORD_REFS_TRIGGER = (
    "CREATE FUNCTION credo_record_refs() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "INSERT INTO record_refs (authority_id, reference, version, subject_id, record_id) "
    "SELECT authority_id, reference, version, subject_id, id FROM credo_new_records; "
    "RETURN NULL; END $$",
    "CREATE TRIGGER credo_record_refs AFTER INSERT ON records "
    "REFERENCING NEW TABLE AS credo_new_records FOR EACH STATEMENT "
    "EXECUTE FUNCTION credo_record_refs()",
)


@dataclass(frozen=True)
class Partitioned:
    """One table as partitioned: its rows moved and the partitions it now has."""

    table: str
    rows: int
    partitions: int


def partitioning(conn: Connection) -> dict[str, int]:
    """The partitioned tables of the register and how many partitions each has."""
    if is_sqlite(conn):
        return {}
    rows = conn.execute(
        text(
            "SELECT c.relname, COUNT(i.inhrelid) FROM pg_partitioned_table p "
            "JOIN pg_class c ON c.oid = p.partrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema() "
            "LEFT JOIN pg_inherits i ON i.inhparent = c.oid GROUP BY c.relname"
        )
    )
    return {str(name): int(count) for name, count in rows}


def partition_register(
    conn: Connection, partitions: int, progress: Callable[[Partitioned], None] | None = None
) -> list[Partitioned]:
    """Hash-partition every subject-keyed table into `partitions`, in this transaction."""
    if is_sqlite(conn):
        raise ValidationError(
            "partitions: the embedded SQLite register is not partitioned; set "
            "CREDO_DATABASE_URL to a PostgreSQL database"
        )
    if not 2 <= partitions <= MAX_PARTITIONS:
        raise ValidationError(f"partitions: give 2 to {MAX_PARTITIONS}, not {partitions}")
    done = partitioning(conn)
    if done:
        counts = sorted(set(done.values()))
        raise ConflictError(
            f"the register is already hash-partitioned ({', '.join(sorted(done))} into "
            f"{'/'.join(map(str, counts))} partitions); it is partitioned once"
        )
    # No filing, rescore or inquiry may write between the copy and the swap.
    for table, _ in TABLES:
        conn.execute(text(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
    moved: list[Partitioned] = []
    for table, key in TABLES:
        result = Partitioned(table, _partition_table(conn, table, key, partitions), partitions)
        moved.append(result)
        if table == "records":
            _record_refs(conn)
        if progress is not None:
            progress(result)
    return moved


def _partition_table(conn: Connection, table: str, key: str, modulus: int) -> int:
    indexes, constraints, inbound = _catalog(conn, table)
    for source, name, _definition in inbound:
        conn.execute(text(f'ALTER TABLE {source} DROP CONSTRAINT "{name}"'))
    old = f"{table}__unpartitioned"
    conn.execute(text(f"ALTER TABLE {table} RENAME TO {old}"))
    conn.execute(
        text(
            f"CREATE TABLE {table} (LIKE {old} INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
            f"INCLUDING STORAGE INCLUDING COMMENTS) PARTITION BY HASH ({key})"
        )
    )
    width = len(str(modulus - 1))
    for remainder in range(modulus):
        conn.execute(
            text(
                f"CREATE TABLE {table}_p{remainder:0{width}d} PARTITION OF {table} "
                f"FOR VALUES WITH (MODULUS {modulus}, REMAINDER {remainder})"
            )
        )
    rows = conn.execute(text(f"INSERT INTO {table} SELECT * FROM {old}")).rowcount
    sequences = conn.execute(
        text(
            "SELECT s.relname, a.attname FROM pg_depend d "
            "JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' "
            "JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid "
            "WHERE d.refobjid = CAST(:old AS regclass) AND d.deptype = 'a'"
        ),
        {"old": old},
    ).all()
    for sequence, column in sequences:
        conn.execute(text(f"ALTER SEQUENCE {sequence} OWNED BY {table}.{column}"))
    conn.execute(text(f"DROP TABLE {old}"))
    for name, kind, definition, columns in constraints:
        if kind == "p":
            cols = columns if key in columns else [*columns, key]
            conn.execute(
                text(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" PRIMARY KEY ({", ".join(cols)})')
            )
        elif kind == "u" and key not in columns:
            if table != "records":  # only the filing key has a global home (record_refs)
                raise ConflictError(
                    f"{table}.{name}: a unique key without {key} cannot hold on a table "
                    "partitioned by subject; nothing was changed"
                )
            conn.execute(text(f'CREATE INDEX "{name}" ON {table} ({", ".join(columns)})'))
        elif kind in ("u", "f"):
            conn.execute(text(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}'))
    for definition in indexes:
        conn.execute(text(definition))
    still_unique = _unique_column_sets(conn, table)
    for source, name, definition in inbound:
        if _referenced_columns(definition) in still_unique:
            conn.execute(text(f'ALTER TABLE {source} ADD CONSTRAINT "{name}" {definition}'))
    return int(rows)


def _catalog(
    conn: Connection, table: str
) -> tuple[list[str], list[tuple[str, str, str, list[str]]], list[tuple[str, str, str]]]:
    """The table's own indexes (not those behind constraints), its constraints and the
    foreign keys of other tables that point to it."""
    indexes = [
        str(row[0])
        for row in conn.execute(
            text(
                "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i "
                "WHERE i.indrelid = CAST(:t AS regclass) AND NOT EXISTS "
                "(SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid "
                "AND c.conrelid = i.indrelid)"
            ),
            {"t": table},
        )
    ]
    constraints = [
        (str(name), str(kind), str(definition), [str(c) for c in columns])
        for name, kind, definition, columns in conn.execute(
            text(
                "SELECT c.conname, c.contype, pg_get_constraintdef(c.oid), "
                "ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(n, o) "
                "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n "
                "ORDER BY k.o) FROM pg_constraint c "
                "WHERE c.conrelid = CAST(:t AS regclass) AND c.contype IN ('p', 'u', 'f') "
                "AND c.conparentid = 0 "
                "ORDER BY c.contype DESC, c.conname"
            ),
            {"t": table},
        )
    ]
    inbound = [
        (str(source), str(name), str(definition))
        for source, name, definition in conn.execute(
            text(
                "SELECT CAST(c.conrelid AS regclass), c.conname, pg_get_constraintdef(c.oid) "
                "FROM pg_constraint c WHERE c.confrelid = CAST(:t AS regclass) "
                "AND c.contype = 'f' AND c.conrelid <> c.confrelid AND c.conparentid = 0"
            ),
            {"t": table},
        )
    ]
    return indexes, constraints, inbound


def _unique_column_sets(conn: Connection, table: str) -> set[tuple[str, ...]]:
    rows = conn.execute(
        text(
            "SELECT ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(n, o) "
            "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.o) "
            "FROM pg_constraint c WHERE c.conrelid = CAST(:t AS regclass) "
            "AND c.contype IN ('p', 'u')"
        ),
        {"t": table},
    )
    return {tuple(str(c) for c in row[0]) for row in rows}


def _referenced_columns(definition: str) -> tuple[str, ...]:
    """`FOREIGN KEY (a) REFERENCES t(b, c)` -> ("b", "c")."""
    inside = definition.split("REFERENCES", 1)[1].split("(", 1)[1].split(")", 1)[0]
    return tuple(part.strip().strip('"') for part in inside.split(","))


def _record_refs(conn: Connection) -> None:
    conn.execute(text(RECORD_REFS))
    conn.execute(
        text(
            "INSERT INTO record_refs (authority_id, reference, version, subject_id, record_id) "
            "SELECT authority_id, reference, version, subject_id, id FROM records"
        )
    )
    for statement in RECORD_REFS_TRIGGER:
        conn.execute(text(statement))
