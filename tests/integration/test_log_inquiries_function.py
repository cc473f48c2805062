"""`audit.APPEND_SQL`: PostgreSQL links an entry into the chain exactly as Python does.

The inquiry log's commit sends its audit entry before it knows the chain's head, so the
link (SHA-256 over `prev_hash|seq|...`) is computed by PostgreSQL. These tests hold that
text to `audit.entry_hash` byte for byte (non-ASCII text, no subject, no digest, the very
first entry) and `credo audit verify` to the result.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
from sqlalchemy import select

from credo.services.audit_verify import verify_audit
from credo.services.register import Register
from credo.store import audit
from credo.store.hotpath import driver_connection
from credo.store.tables import audit_entries

AT = datetime(2026, 3, 15, 9, 30, 12, 345678, tzinfo=UTC)
ENTRIES = [
    audit.Entry(
        actor="bureau-ümlaut",
        action="note.made",
        payload={"name": "王小明", "quote": 'a "b" | c', "n": 3},
        at=AT,
        subject_id="s-ß1",
        digest="ab" * 32,
    ),
    audit.Entry(actor="credo", action="note.made", payload={}, at=AT + timedelta(hours=1)),
    audit.Entry(
        actor="x|y", action="z", payload={"line": "one\ntwo"}, at=AT.replace(microsecond=0)
    ),
]


def _append(register: Register, entries: list[audit.Entry]) -> None:
    with driver_connection(register.engine) as conn:
        cursor = psycopg.ClientCursor(conn)
        for entry in entries:
            cursor.execute(
                f"BEGIN; {audit.LOCK_SQL}; {audit.APPEND_SQL}; COMMIT", audit.append_params(entry)
            )


def _chain(register: Register) -> list[tuple[int, str, str]]:
    with register.read() as conn:
        rows = conn.execute(
            select(audit_entries.c.seq, audit_entries.c.prev_hash, audit_entries.c.hash).order_by(
                audit_entries.c.seq
            )
        ).all()
    return [(row.seq, row.prev_hash, row.hash) for row in rows]


def test_postgresql_links_entries_as_entry_hash_does(pg_register: Register) -> None:
    before = _chain(pg_register)
    head = (before[-1][0], before[-1][2]) if before else None
    _append(pg_register, ENTRIES)
    expected = [(row["seq"], row["prev_hash"], row["hash"]) for row in audit.chain(head, ENTRIES)]
    assert _chain(pg_register)[len(before) :] == expected
    verification = verify_audit(pg_register)
    assert verification.ok, verification.problems


def test_the_first_entry_of_an_empty_chain_follows_genesis(pg_register: Register) -> None:
    with pg_register.write() as conn:
        conn.execute(audit_entries.delete())
    _append(pg_register, ENTRIES[:1])
    [(seq, prev, link)] = _chain(pg_register)
    assert (seq, prev) == (1, audit.GENESIS)
    assert link == audit.chain(None, ENTRIES[:1])[0]["hash"]
