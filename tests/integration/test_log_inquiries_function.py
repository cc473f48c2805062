"""`credo_log_inquiries` (migration 0015): PostgreSQL links an entry into the chain exactly
as Python does, and stores the rows that name it.

The inquiry log's commit sends its audit entry before it knows the chain's head, so the
link (SHA-256 over `prev_hash|seq|...`) is computed by PostgreSQL. These tests hold that
function to `audit.entry_hash` byte for byte (non-ASCII text, no subject, no digest, the
very first entry), its rows to what was sent, and `credo audit verify` to the result.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone

from sqlalchemy import select

from credo.services.audit_verify import verify_audit
from credo.services.inquiries import Inquiry, write_inquiries
from credo.services.register import Register
from credo.store import audit
from credo.store.hotpath import driver_connection
from credo.store.tables import audit_entries, inquiries
from tests.factories import seed_register

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
    """Each entry by one call of the function, with no rows."""
    with driver_connection(register.engine) as conn:
        for entry in entries:
            conn.execute(
                "SELECT credo_log_inquiries(%(at)s, %(actor)s, %(action)s, %(subject_id)s, "
                "%(payload)s, %(digest)s, %(tail)s, %(rows)s)",
                audit.append_params(entry) | {"rows": json.dumps([])},
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


def test_the_rows_are_stored_as_sent_and_name_their_entry(pg_register: Register) -> None:
    seed_register(pg_register, subjects=2)
    east = timezone(timedelta(hours=8))
    batch = [
        Inquiry("s-001", "city-personnel", "promotion-review", date(2026, 3, 15), AT, "api"),
        Inquiry("s-002", 'bureau|ü"x', "audit\\n", date(2025, 12, 31), AT.astimezone(east), "cli"),
    ]
    write_inquiries(pg_register, batch)
    with pg_register.read() as conn:
        rows = conn.execute(select(inquiries).order_by(inquiries.c.id)).all()
        [head] = conn.execute(
            select(audit_entries.c.seq).order_by(audit_entries.c.seq.desc()).limit(1)
        ).all()
    assert [(r.subject_id, r.authority_id, r.purpose, r.as_of, r.at, r.channel) for r in rows] == [
        (i.subject_id, i.authority_id, i.purpose, i.as_of, i.at, i.channel) for i in batch
    ]
    assert {r.audit_seq for r in rows} == {head.seq}
    verification = verify_audit(pg_register)
    assert verification.ok, verification.problems
