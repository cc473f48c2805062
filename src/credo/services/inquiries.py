"""Inquiries: every look at a subject, logged durably before it is answered.

Each commit of inquiries appends one audit entry, `inquiries.logged`, whose digest covers
the rows it logged (their `audit_seq` names it): `credo audit verify` then catches an
inquiry deleted or altered behind the application's back, so nobody can erase who looked.

A lookup hands its inquiry to the log of its database and returns once the transaction
holding it has committed. Concurrent lookups share one commit (group commit): one lock of
the audit chain, one audit entry and one WAL flush for the lot. Two logs do this:
`InquiryLog`, a writer thread for requests served in threads, and `AsyncInquiryLog`, a task
on the event loop for the API's PostgreSQL hot path (credo.store.hotpath), where no thread
is involved at all.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import psycopg
from sqlalchemy import Engine
from sqlalchemy.engine import Connection

from credo.services.register import Register
from credo.store import audit
from credo.store.db import is_sqlite
from credo.store.hotpath import LoopBatcher, PerLoop, async_connection, hot_pool
from credo.store.tables import inquiries

LOGGED = "inquiries.logged"  # the audit entry of one commit of inquiries
LEGACY = "inquiry.made"  # before migration 0010: one entry per inquiry, no digest


@dataclass(frozen=True)
class Inquirer:
    """Who is looking and through which channel."""

    authority_id: str
    channel: str  # api | cli


@dataclass(frozen=True)
class Inquiry:
    """One look at a subject, as logged: the row the subject sees."""

    subject_id: str
    authority_id: str
    purpose: str
    as_of: date
    at: datetime
    channel: str

    def row(self, audit_seq: int) -> dict[str, Any]:
        """The inquiries row, covered by the audit entry `audit_seq`."""
        return {
            "subject_id": self.subject_id,
            "authority_id": self.authority_id,
            "purpose": self.purpose,
            "as_of": self.as_of,
            "at": self.at,
            "channel": self.channel,
            "audit_seq": audit_seq,
        }

    def row_hash(self) -> str:
        """What the covering entry's digest is made of (see `inquiry_hash`)."""
        return inquiry_hash(
            self.subject_id, self.authority_id, self.purpose, self.as_of, self.at, self.channel
        )


def inquiry_hash(
    subject_id: str, authority_id: str, purpose: str, as_of: date, at: datetime, channel: str
) -> str:
    """SHA-256 over one inquiry's columns, as stored (a JSON array: no separator inside a
    value can shift text from one column to the next)."""
    fields = [subject_id, authority_id, purpose, as_of.isoformat(), audit.stamp(at), channel]
    return hashlib.sha256(audit.canonical(fields).encode()).hexdigest()


def logged_entry(batch: Sequence[Inquiry]) -> audit.Entry:
    """The one audit entry of a commit of inquiries: how many, by whom, and a digest of
    their rows (over the sorted row hashes: the rows' order does not matter)."""
    authorities = sorted({inquiry.authority_id for inquiry in batch})
    return audit.Entry(
        actor=authorities[0] if len(authorities) == 1 else "credo",
        action=LOGGED,
        at=max(inquiry.at for inquiry in batch),
        payload={"inquiries": len(batch), "authorities": authorities},
        digest=audit.rows_digest(sorted(inquiry.row_hash() for inquiry in batch)),
    )


def log_inquiries(
    conn: Connection,
    register: Register,
    who: Inquirer,
    purpose: str,
    subject_ids: Iterable[str],
    as_of: date,
) -> None:
    """Log looks at subjects inside the caller's transaction: their rows and one entry."""
    now = register.clock.now()
    batch = [
        Inquiry(subject_id, who.authority_id, purpose, as_of, now, who.channel)
        for subject_id in subject_ids
    ]
    store_inquiries(conn, batch)


def store_inquiries(conn: Connection, batch: Sequence[Inquiry]) -> None:
    """Append the batch's audit entry, then its rows, inside the caller's transaction."""
    if not batch:
        return
    [seq] = audit.append_many(conn, [logged_entry(batch)])
    conn.execute(inquiries.insert(), [inquiry.row(seq) for inquiry in batch])


# PostgreSQL: a commit of inquiries is one statement, a call of `credo_log_inquiries`
# (migration 0015): the chain's advisory lock, the audit entry chained after the head the
# lock leaves (PostgreSQL computes its link with `sha256()` over the same text as
# `audit.entry_hash`, the part after `prev_hash|seq|` bound from Python) and one insert of
# the batch's rows naming it, committed when the statement ends (autocommit: one WAL flush
# for the lot). One message and one round trip, and the statement is prepared: PL/pgSQL
# keeps the plans of the statements inside, where the four statements sent as one text were
# parsed and planned afresh for every commit (docs/performance.md). The rows go as one JSON
# array, which psycopg sends as it is.
_LOG = (
    "SELECT credo_log_inquiries(%(at)s, %(actor)s, %(action)s, %(subject_id)s, %(payload)s, "
    "%(digest)s, %(tail)s, %(rows)s)"
)


def _log_params(batch: Sequence[Inquiry]) -> dict[str, Any]:
    """The values of `_LOG`: the audit entry's, and the rows as one JSON array."""
    rows = [
        [i.subject_id, i.authority_id, i.purpose, i.as_of.isoformat(), i.at.isoformat(), i.channel]
        for i in batch
    ]
    return audit.append_params(logged_entry(batch)) | {"rows": json.dumps(rows)}


def write_inquiries(register: Register, batch: list[Inquiry]) -> None:
    """Commit inquiries in one transaction: one audit entry, then their rows.

    On PostgreSQL through a hot-path psycopg connection (credo.store.hotpath), in one
    statement and one round trip (`_LOG`), whose answer comes once the lot is durable.
    """
    if is_sqlite(register.engine):
        with register.write() as conn:
            store_inquiries(conn, batch)
        return
    with hot_pool(register.engine).connection() as pg:
        pg.execute(_LOG, _log_params(batch))


async def write_inquiries_async(conn: psycopg.AsyncConnection[Any], batch: list[Inquiry]) -> None:
    """`write_inquiries` on PostgreSQL, through an async psycopg connection (autocommit):
    the same one statement, and no caller answered before its inquiry is durable."""
    await conn.execute(_LOG, _log_params(batch))


@dataclass
class _Pending:
    register: Register
    inquiries: list[Inquiry]
    done: threading.Event = field(default_factory=threading.Event)
    error: Exception | None = None


class InquiryLog:
    """Group commit of inquiries for one database, in one process.

    Each request hands its inquiry over and waits until the transaction holding it has
    committed: nothing is answered before its inquiry and audit entry are durable. One writer
    thread commits whatever has queued meanwhile in one transaction (one lock of the audit
    chain, one WAL flush for the lot), so concurrent requests share the commit instead of
    queueing one by one behind the chain's lock. The thread starts on demand and ends when
    idle. A failed commit fails every request of its batch (and logs none of them).

    >>> inquiry_log(register).log(register, Inquiry(...))  # returns once committed
    """

    MAX_BATCH = 1000  # inquiries a commit takes when more have queued (a request's stay whole)
    IDLE_SECONDS = 2.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._queue: list[_Pending] = []
        self._running = False

    def log(self, register: Register, inquiry: Inquiry) -> None:
        """Queue one inquiry and return once it is committed (or raise why it was not)."""
        self.log_all(register, [inquiry])

    def log_all(self, register: Register, inquiries: list[Inquiry]) -> None:
        """Queue one request's inquiries (a batch check's) and return once they are all
        committed, in one transaction with whatever else queued (or raise why not)."""
        if not inquiries:
            return
        pending = _Pending(register, inquiries)
        with self._lock:
            self._queue.append(pending)
            if self._running:
                self._wake.notify()
            else:
                self._running = True
                threading.Thread(target=self._run, name="credo-inquiry-log", daemon=True).start()
        pending.done.wait()
        if pending.error is not None:
            raise pending.error

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    self._wake.wait(self.IDLE_SECONDS)
                    if not self._queue:
                        self._running = False
                        return
                taken, rows = 0, 0
                for pending in self._queue:  # whole requests, at least one
                    if taken and rows + len(pending.inquiries) > self.MAX_BATCH:
                        break
                    taken, rows = taken + 1, rows + len(pending.inquiries)
                batch = self._queue[:taken]
                del self._queue[:taken]
            try:
                write_inquiries(batch[0].register, [i for p in batch for i in p.inquiries])
            except Exception as exc:  # handed to every waiting request, which re-raises it
                for pending in batch:
                    pending.error = exc
            finally:
                for pending in batch:
                    pending.done.set()


_logs: weakref.WeakKeyDictionary[Engine, tuple[int, InquiryLog]] = weakref.WeakKeyDictionary()
_logs_lock = threading.Lock()


def inquiry_log(register: Register) -> InquiryLog:
    """The inquiry log of this register's database in this process."""
    pid = os.getpid()
    with _logs_lock:
        found = _logs.get(register.engine)
        if found is None or found[0] != pid:  # a forked child starts its own writer
            found = _logs[register.engine] = (pid, InquiryLog())
        return found[1]


class AsyncInquiryLog(LoopBatcher[Inquiry, None]):
    """Group commit of inquiries on one event loop, for one PostgreSQL database.

    `InquiryLog` without threads: each request queues its inquiry and awaits it; one task
    commits whatever has queued meanwhile, then the next batch (`LoopBatcher`). A failed
    commit fails every request of its batch (and logs none of them). A request whose client
    went away still has its inquiry committed: the answer may be lost, never the record
    that it was given.
    """

    async def log(self, inquiry: Inquiry) -> None:
        """Queue one inquiry and return once it is committed (or raise why it was not)."""
        await self.submit(inquiry)

    async def handle(self, items: list[Inquiry]) -> list[Exception | None]:
        """Commit the batch in one transaction."""
        async with async_connection(self.engine) as conn:
            await write_inquiries_async(conn, items)
        return [None] * len(items)


# The inquiry log of a PostgreSQL database on the running event loop.
async_inquiry_log = PerLoop(AsyncInquiryLog)
