"""Standings: computed from the stored records, and every look at one logged as an inquiry."""

from __future__ import annotations

import os
import threading
import weakref
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import Engine

from credo.domain.errors import (
    NoActivePolicyError,
    NotFoundError,
    PermissionDeniedError,
    Problem,
)
from credo.domain.policy import Policy, Visible
from credo.domain.scoring import Standing, compute_standing
from credo.services.keys import key_authority, key_prefix
from credo.services.register import Register
from credo.store import audit, repository
from credo.store.db import is_sqlite
from credo.store.hotpath import driver_connection, hot_pool
from credo.store.tables import inquiries

ADMIN_PURPOSE = "register-administration"


@dataclass(frozen=True)
class Inquirer:
    """Who is looking and through which channel."""

    authority_id: str
    channel: str  # api | cli


@dataclass(frozen=True)
class Inquiry:
    """One look at a subject, as logged: the row the subject sees and its audit entry."""

    subject_id: str
    authority_id: str
    purpose: str
    as_of: date
    at: datetime
    channel: str

    def row(self) -> dict[str, Any]:
        """The inquiries row."""
        return {
            "subject_id": self.subject_id,
            "authority_id": self.authority_id,
            "purpose": self.purpose,
            "as_of": self.as_of,
            "at": self.at,
            "channel": self.channel,
        }

    def entry(self) -> audit.Entry:
        """The audit entry `inquiry.made`."""
        return audit.Entry(
            actor=self.authority_id,
            action="inquiry.made",
            at=self.at,
            subject_id=self.subject_id,
            payload={
                "purpose": self.purpose,
                "as_of": self.as_of.isoformat(),
                "channel": self.channel,
            },
        )


def log_inquiry(
    conn: Any, register: Register, who: Inquirer, purpose: str, subject_id: str, as_of: date
) -> None:
    """Log one look at a subject inside the caller's transaction: row and audit entry."""
    inquiry = Inquiry(
        subject_id, who.authority_id, purpose, as_of, register.clock.now(), who.channel
    )
    conn.execute(inquiries.insert().values(**inquiry.row()))
    audit.append_many(conn, [inquiry.entry()])


_INSERT_INQUIRY = (
    "INSERT INTO inquiries (subject_id, authority_id, purpose, as_of, at, channel) "
    "VALUES (%(subject_id)s, %(authority_id)s, %(purpose)s, %(as_of)s, %(at)s, %(channel)s)"
)


def write_inquiries(register: Register, batch: list[Inquiry]) -> None:
    """Commit inquiries in one transaction: their rows, then their audit entries in order.

    On PostgreSQL through a hot-path psycopg connection (credo.store.hotpath): the chain's
    lock and head in one round trip, both inserts and the commit in another.
    """
    entries = [inquiry.entry() for inquiry in batch]
    if is_sqlite(register.engine):
        with register.write() as conn:
            conn.execute(inquiries.insert(), [inquiry.row() for inquiry in batch])
            audit.append_many(conn, entries)
        return
    with hot_pool(register.engine).connection() as pg, pg.transaction():
        with pg.pipeline():
            pg.execute(audit.LOCK_SQL)
            head = pg.execute(audit.HEAD_SQL).fetchone()
        with pg.cursor() as cur, pg.pipeline():
            cur.executemany(_INSERT_INQUIRY, [inquiry.row() for inquiry in batch])
            cur.executemany(audit.INSERT_SQL, audit.chain(head, entries))


@dataclass
class _Pending:
    register: Register
    inquiry: Inquiry
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

    MAX_BATCH = 500
    IDLE_SECONDS = 2.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._queue: list[_Pending] = []
        self._running = False

    def log(self, register: Register, inquiry: Inquiry) -> None:
        """Queue one inquiry and return once it is committed (or raise why it was not)."""
        pending = _Pending(register, inquiry)
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
                batch = self._queue[: self.MAX_BATCH]
                del self._queue[: self.MAX_BATCH]
            try:
                write_inquiries(batch[0].register, [p.inquiry for p in batch])
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


def standings(
    register: Register,
    subject_ids: list[str],
    *,
    as_of: date | None,
    who: Inquirer,
    purpose: str = ADMIN_PURPOSE,
) -> list[Standing]:
    """Full standings (register administration); each look is logged for the subject."""
    day = as_of or register.clock.today()
    with register.write() as conn:
        _, policy = register.active_policy(conn)
        result = []
        for subject_id in subject_ids:
            repository.subject_row(conn, subject_id)
            facts = repository.record_facts(conn, subject_id)
            result.append(compute_standing(policy, subject_id, facts, day))
            log_inquiry(conn, register, who, purpose, subject_id, day)
    return result


def check_purpose(policy: Policy, authority_id: str, purpose_id: str) -> None:
    """Refuse a purpose that does not exist or does not list the authority."""
    purpose = policy.purpose_by_id.get(purpose_id)
    if purpose is None:
        raise PermissionDeniedError(
            f"purpose {purpose_id!r} is not declared in the active policy",
            [Problem("purpose", f"unknown purpose {purpose_id!r}")],
        )
    if authority_id not in purpose.authorities:
        raise PermissionDeniedError(
            f"authority {authority_id!r} may not query for purpose {purpose_id!r}",
            [Problem("purpose", f"{purpose_id!r} is not open to {authority_id!r}")],
        )


def visible_standing(
    policy: Policy, standing: Standing, authority_id: str, purpose_id: str
) -> dict[str, Any]:
    """Only what the purpose sees, and only the asking authority's measures."""
    sees = set(policy.purpose_by_id[purpose_id].sees)
    full = standing.to_json()
    shown: dict[str, Any] = {
        "subject_id": full["subject_id"],
        "as_of": full["as_of"],
        "policy": full["policy"],
        "purpose": purpose_id,
    }
    if Visible.SCORE in sees:
        shown["score"] = full["score"]
    if Visible.GRADE in sees:
        shown["grade"] = full["grade"]
    if Visible.LISTS in sees:
        shown["lists"] = full["lists"]
    if Visible.MEASURES in sees:
        own = {m.id for m in policy.measures if m.authority == authority_id}
        shown["measures"] = [m for m in full["measures"] if m in own]
    if Visible.EXPLANATION in sees:
        shown["explanation"] = full["explanation"]
    return shown


_LOOKUP = (
    "WITH caller AS (SELECT (SELECT id FROM policy_versions WHERE active) AS policy_id, "
    "(SELECT 1 FROM subjects WHERE id = {mark}) AS known, "
    "k.authority_id, k.key_hash, k.revoked_at "
    "FROM (SELECT 1 AS one) AS one LEFT JOIN api_keys k ON k.prefix = {mark}) "
    "SELECT caller.*, " + repository.FACTS_COLUMNS + " FROM caller "
    "LEFT JOIN (" + repository.FACTS_JOIN + ") ON r.subject_id = {mark} ORDER BY r.id"
)
_LOOKUP_SQLITE = _LOOKUP.format(mark="?")
_LOOKUP_PG = _LOOKUP.format(mark="%s")
_FACTS_FROM = 5  # the lookup's columns before the record facts


def query_standing(
    register: Register,
    *,
    subject_id: str,
    purpose_id: str,
    as_of: date | None = None,
    authority_id: str | None = None,
    api_key: str | None = None,
) -> dict[str, Any]:
    """An authority's look at one subject for a declared purpose, logged as an inquiry.

    The asker is `authority_id`, or the holder of `api_key`, which is then checked here (a
    revoked key is refused at once). Checks come in the order the API promises: the key
    (401), the purpose (403), the subject (404). The standing is answered only after its
    inquiry and audit entry are committed (through the group commit of `InquiryLog`).

    The hot path: one statement through the driver (credo.store.hotpath) reads the key, the
    active policy's id, whether the subject exists and the subject's records; then the pure
    scorer, then the shared commit. The records are read before the key is judged, but
    nothing of them leaves this function unless every check passes.
    """
    if (authority_id is None) == (api_key is None):
        raise ValueError("give exactly one of authority_id and api_key")
    day = as_of or register.clock.today()
    prefix = key_prefix(api_key) if api_key is not None else None
    sql = _LOOKUP_SQLITE if is_sqlite(register.engine) else _LOOKUP_PG
    with driver_connection(register.engine) as conn:
        rows = conn.execute(sql, (subject_id, prefix, subject_id)).fetchall()
    first = rows[0]
    if api_key is not None:
        authority_id = key_authority(first[2:5], api_key)
    assert authority_id is not None
    if first[0] is None:
        raise NoActivePolicyError("no policy is active yet: run `credo policy activate FILE` first")
    policy = _policy(register, int(first[0]))
    check_purpose(policy, authority_id, purpose_id)
    if first[1] is None:
        raise NotFoundError(
            f"subject {subject_id!r} is not registered",
            [Problem("subject_id", "not registered")],
        )
    facts = repository.facts_from_rows(rows, _FACTS_FROM)
    standing = compute_standing(policy, subject_id, facts, day)
    inquiry = Inquiry(subject_id, authority_id, purpose_id, day, register.clock.now(), "api")
    inquiry_log(register).log(register, inquiry)
    return visible_standing(policy, standing, authority_id, purpose_id)


def _policy(register: Register, version_id: int) -> Policy:
    """The parsed active policy; its text is read again only when the active version changed."""
    cached = _active_policies.get(register.engine)
    if cached is not None and cached[0] == version_id:
        return cached[1]
    with register.read() as conn:
        found_id, policy = register.active_policy(conn)
    _active_policies[register.engine] = (found_id, policy)
    return policy


# The last active policy seen per database, in this process.
_active_policies: weakref.WeakKeyDictionary[Engine, tuple[int, Policy]] = (
    weakref.WeakKeyDictionary()
)
