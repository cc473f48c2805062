"""The append-only, hash-chained audit log: one entry per write, chained by SHA-256."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.engine import Connection

from credo.store.db import is_sqlite
from credo.store.tables import audit_entries

GENESIS = "0" * 64
CHAIN_LOCK = 7276001  # the PostgreSQL advisory lock every writer of the chain takes


def canonical(value: Any) -> str:
    """Deterministic JSON text for hashing."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def stamp(at: datetime) -> str:
    """A timestamp as hashed: UTC, microseconds, `Z`."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_hash(
    prev_hash: str,
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    subject_id: str | None,
    payload: str,
    digest: str | None,
) -> str:
    """The hash of one entry, chained to the previous one."""
    tail = hash_tail(at, actor, action, subject_id, payload, digest)
    return hashlib.sha256(f"{prev_hash}|{seq}|{tail}".encode()).hexdigest()


def hash_tail(
    at: datetime, actor: str, action: str, subject_id: str | None, payload: str, digest: str | None
) -> str:
    """What an entry's hashed text holds after `prev_hash|seq|`: known before the head is."""
    return "|".join([stamp(at), actor, action, subject_id or "", payload, digest or ""])


def rows_digest(row_hashes: Iterable[str]) -> str:
    """The digest a batch entry carries: SHA-256 over its rows' hashes in id order."""
    h = hashlib.sha256()
    for row_hash in row_hashes:
        h.update(row_hash.encode())
        h.update(b"\n")
    return h.hexdigest()


def lock_chain(conn: Connection) -> None:
    """Queue behind every other writer of the chain until it commits (PostgreSQL).

    The measures feed orders its events under this same lock, so that a writer never holds
    one of two locks while waiting for the other.
    """
    if not is_sqlite(conn):
        conn.execute(text(f"SELECT pg_advisory_xact_lock({CHAIN_LOCK})"))


@dataclass(frozen=True)
class Entry:
    """One audit entry to append: who did what, when, to whom, with what payload."""

    actor: str
    action: str
    payload: dict[str, Any]
    at: datetime
    subject_id: str | None = None
    digest: str | None = None


def append(
    conn: Connection,
    *,
    actor: str,
    action: str,
    payload: dict[str, Any],
    at: datetime,
    subject_id: str | None = None,
    digest: str | None = None,
) -> int:
    """Append one entry inside the caller's transaction and return its sequence number."""
    return append_many(conn, [Entry(actor, action, payload, at, subject_id, digest)])[0]


def append_many(conn: Connection, entries: Sequence[Entry]) -> list[int]:
    """Append entries in order inside the caller's transaction; returns their sequence numbers.

    One lock, one read of the chain's head and one multi-row insert for the lot: the chain is
    the same as from one `append` per entry, at a fraction of the round trips (the inquiry
    log commits its queued inquiries this way on SQLite; on PostgreSQL by one call of the
    function `credo_log_inquiries`, migration 0015, which takes `append_params`).
    """
    if not entries:
        return []
    lock_chain(conn)
    head = conn.execute(
        select(audit_entries.c.seq, audit_entries.c.hash)
        .order_by(audit_entries.c.seq.desc())
        .limit(1)
    ).first()
    rows = chain(head, entries)
    conn.execute(audit_entries.insert(), rows)
    return [row["seq"] for row in rows]


def append_params(entry: Entry) -> dict[str, Any]:
    """One entry's values for a writer that sends it before it knows the chain's head
    (`credo_log_inquiries` on PostgreSQL, migration 0015): its columns, and as `tail` what
    its link hashes after `prev_hash|seq|` (`hash_tail`), from which PostgreSQL computes the
    link with `sha256()` as `entry_hash` does."""
    body = canonical(entry.payload)
    tail = hash_tail(entry.at, entry.actor, entry.action, entry.subject_id, body, entry.digest)
    return {**_given(entry, body), "tail": tail}


def _given(entry: Entry, body: str) -> dict[str, Any]:
    """The columns of an entry's row that do not depend on its place in the chain."""
    return {
        "at": entry.at,
        "actor": entry.actor,
        "action": entry.action,
        "subject_id": entry.subject_id,
        "payload": body,
        "digest": entry.digest,
    }


def chain(head: Sequence[Any] | None, entries: Sequence[Entry]) -> list[dict[str, Any]]:
    """The rows of `entries`, chained after `head` (its seq and hash; None: the first)."""
    seq, prev = (head[0] + 1, head[1]) if head else (1, GENESIS)
    rows: list[dict[str, Any]] = []
    for entry in entries:
        body = canonical(entry.payload)
        link = entry_hash(
            prev, seq, entry.at, entry.actor, entry.action, entry.subject_id, body, entry.digest
        )
        rows.append({"seq": seq, **_given(entry, body), "prev_hash": prev, "hash": link})
        seq, prev = seq + 1, link
    return rows
