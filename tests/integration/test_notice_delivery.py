"""Notices go out through a real SMTP server (aiosmtpd on 127.0.0.1), on both stores.

A notice is marked delivered only after the server accepted it; a failed attempt keeps it
pending with backoff, and nothing is lost or sent twice once the server is back.
"""

from __future__ import annotations

import contextlib
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from itertools import pairwise
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import event, select, text

from credo.clock import FixedDateClock
from credo.services.notices import (
    MAX_BACKOFF,
    SmtpSender,
    StoredOnly,
    backoff,
    deliver,
    notices_of,
)
from credo.services.policies import activate_policy
from credo.services.register import Register
from credo.services.subjects import import_subjects
from credo.store.db import is_sqlite
from credo.store.tables import notices
from tests.conftest import TODAY
from tests.factories import WORKED_POLICY, file_rows, record, rows

FROM = "credo@register.example"
EMAILS = {"s-001": "ada@example.org", "s-002": "bo@example.org", "s-003": None}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Inbox:
    """An aiosmtpd handler that keeps every accepted message."""

    refuse_rcpt: str | None = None
    refuse_data: str | None = None
    messages: list[tuple[list[str], Message]] = field(default_factory=list)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        if self.refuse_rcpt:
            return self.refuse_rcpt
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse_data:
            return self.refuse_data
        self.messages.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
        return "250 Message accepted for delivery"


class MailServer:
    """A local SMTP server that can be stopped and started again on the same port."""

    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox
        self.port = free_port()
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def sender(self) -> SmtpSender:
        return SmtpSender("127.0.0.1", self.port, sender=FROM, timeout=5)


@pytest.fixture
def smtp() -> Iterator[MailServer]:
    """A running local SMTP server collecting messages."""
    server = MailServer(Inbox())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def down() -> Iterator[MailServer]:
    """A mail server that is not running yet (nothing listens on its port)."""
    server = MailServer(Inbox())
    yield server
    server.stop()


def seed(register: Register) -> None:
    """The worked policy, three people (s-003 without e-mail) and records for each."""
    activate_policy(register, WORKED_POLICY, actor="test", comment="seed")
    people = []
    for sid, email in EMAILS.items():
        row = {"subject_id": sid, "name": f"Person {sid}", "organisation": "Tax Bureau"}
        if email:
            row["email"] = email
        people.append(row)
    assert import_subjects(register, rows(people), actor="test", source="t").rejected == 0
    report = file_rows(
        register,
        "city-court",
        [
            record("C-1", "s-001", "court.order_defiance", "2026-01-10"),
            record("C-2", "s-002", "court.order_defiance", "2026-02-10"),
            record("C-3", "s-003", "court.order_defiance", "2026-03-01"),
        ],
    )
    assert report.stored == 3
    tax = file_rows(register, "city-tax", [record("T-1", "s-001", "tax.arrears", "2026-03-01")])
    assert tax.stored == 1


def notice_rows(register: Register, subject_id: str | None = None) -> list[Any]:
    query = select(notices).order_by(notices.c.id)
    if subject_id is not None:
        query = query.where(notices.c.subject_id == subject_id)
    with register.read() as conn:
        return list(conn.execute(query).all())


def aware(value: datetime) -> datetime:
    """SQLite hands back naive UTC datetimes; PostgreSQL aware ones."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def mailed(register: Register) -> list[Any]:
    """The notices of the subjects that have an e-mail address."""
    return [n for n in notice_rows(register) if EMAILS[n.subject_id]]


# ----------------------------------------------------------------------------- delivery


def test_filing_writes_pending_notices(register: Register) -> None:
    seed(register)
    filed = [n for n in notice_rows(register) if n.kind == "record.filed"]
    assert sorted(n.subject_id for n in filed) == ["s-001", "s-001", "s-002", "s-003"]
    assert {n.status for n in notice_rows(register)} == {"pending"}
    assert {n.attempts for n in notice_rows(register)} == {0}


def test_deliver_sends_one_mail_per_notice_to_the_subject(
    register: Register, smtp: MailServer
) -> None:
    seed(register)
    expected = mailed(register)
    assert len(expected) >= 3
    result = deliver(register, smtp.sender())
    assert result.delivered == len(expected)
    assert result.failed == 0
    assert result.kept == len(notice_rows(register, "s-003"))
    assert len(smtp.inbox.messages) == len(expected)
    recipients = sorted(tos[0] for tos, _ in smtp.inbox.messages)
    assert recipients == sorted(EMAILS[n.subject_id] for n in expected)
    for tos, message in smtp.inbox.messages:
        assert len(tos) == 1
        assert message["From"] == FROM
        assert message["To"] == tos[0]
        assert message["Subject"].startswith("credo: ")
    filed_to_ada = [
        m
        for tos, m in smtp.inbox.messages
        if tos == ["ada@example.org"] and m["Subject"] == "credo: A record about you was filed"
    ]
    assert len(filed_to_ada) == 2
    bodies = " ".join(m.get_payload() for m in filed_to_ada)
    assert "C-1" in bodies and "T-1" in bodies
    for n in mailed(register):
        assert n.status == "delivered"
        assert n.delivered_at is not None
        assert n.attempts == 1
    again = deliver(register, smtp.sender())
    assert (again.delivered, again.failed, again.kept) == (0, 0, 0)
    assert len(smtp.inbox.messages) == len(expected)


def test_notices_of_shows_the_delivery_status(register: Register, smtp: MailServer) -> None:
    seed(register)
    deliver(register, smtp.sender())
    with register.read() as conn:
        _, policy = register.active_policy(conn)
        shown = notices_of(conn, "s-001", policy)
        kept = notices_of(conn, "s-003", policy)
    assert shown and {n["delivery"] for n in shown} == {"delivered"}
    assert all(n["delivered_at"] for n in shown)
    assert [n["id"] for n in shown] == sorted((n["id"] for n in shown), reverse=True)
    assert kept and {n["delivery"] for n in kept} == {"stored"}


def test_notices_of_lists_every_notice_of_the_subject_filings_and_others(
    register: Register,
) -> None:
    """The filings' notices are found through the subject's records, the others by subject
    (two partial indexes, migration 0012): together, exactly the subject's notices."""
    seed(register)
    with register.read() as conn:
        _, policy = register.active_policy(conn)
        for subject_id in EMAILS:
            shown = notices_of(conn, subject_id, policy)
            stored = notice_rows(register, subject_id)
            assert [n["id"] for n in shown] == [n.id for n in reversed(stored)]
            assert [n["kind"] for n in shown] == [n.kind for n in reversed(stored)]
        kinds = {n["kind"] for n in notices_of(conn, "s-001", policy)}
        assert "record.filed" in kinds and len(kinds) > 1
        if not is_sqlite(conn):  # each branch can enter by its index, even planned generically
            conn.execute(text("SET LOCAL enable_seqscan = off"))
            conn.execute(text("SET LOCAL plan_cache_mode = force_generic_plan"))
            conn.execute(text("PREPARE notices_of_plan (text) AS " + _notices_of_sql(conn)))
            plan = "\n".join(
                r[0] for r in conn.execute(text("EXPLAIN EXECUTE notices_of_plan ('s-001')"))
            )
            assert "ix_notices_subject_id" in plan and "ix_notices_record_filed" in plan, plan


def _notices_of_sql(conn: Any) -> str:
    """The statement `notices_of` runs, with its subject id as the parameter $1."""
    seen: list[str] = []

    def keep(conn_: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(conn, "before_cursor_execute", keep)
    try:
        notices_of(conn, "s-001", None)
    finally:
        event.remove(conn, "before_cursor_execute", keep)
    statement = next(s for s in seen if "notices" in s and "UNION ALL" in s)
    return re.sub(r"%\(subject_id_\d+\)s", "$1", statement)


def test_a_server_that_is_down_leaves_everything_pending_with_backoff(
    register: Register, down: MailServer, clock: Any
) -> None:
    seed(register)
    expected = mailed(register)
    before = register.clock.now()
    result = deliver(register, down.sender())
    after = register.clock.now()
    assert result.delivered == 0
    assert result.failed == len(expected)
    for n in mailed(register):
        assert n.status == "pending"
        assert n.delivered_at is None
        assert n.attempts == 1
        assert n.last_error
        due = aware(n.next_attempt_at)
        assert before + backoff(1) - timedelta(seconds=1) <= due <= after + backoff(1)
    # Not due yet: nothing is tried again.
    soon = deliver(register, down.sender())
    assert (soon.delivered, soon.failed) == (0, 0)
    assert {n.attempts for n in mailed(register)} == {1}
    # A day later, still down: the second failure waits twice as long.
    clock.day = TODAY + timedelta(days=1)
    before = register.clock.now()
    second = deliver(register, down.sender())
    assert second.failed == len(expected)
    for n in mailed(register):
        assert n.status == "pending"
        assert n.attempts == 2
        wait = aware(n.next_attempt_at) - before
        assert backoff(2) - timedelta(seconds=1) <= wait <= backoff(2) + timedelta(seconds=5)
        assert backoff(2) == 2 * backoff(1)


def test_nothing_is_lost_and_nothing_is_sent_twice_after_the_server_comes_back(
    register: Register, down: MailServer, clock: Any
) -> None:
    seed(register)
    expected = mailed(register)
    assert deliver(register, down.sender()).failed == len(expected)
    down.start()
    # Back, but the retry is not due yet.
    assert deliver(register, down.sender()).delivered == 0
    assert down.inbox.messages == []
    clock.day = TODAY + timedelta(days=1)
    result = deliver(register, down.sender())
    assert result.delivered == len(expected)
    assert deliver(register, down.sender()).delivered == 0
    assert len(down.inbox.messages) == len(expected)
    per_address: dict[str, int] = {}
    for tos, _ in down.inbox.messages:
        per_address[tos[0]] = per_address.get(tos[0], 0) + 1
    assert per_address == {
        "ada@example.org": len(mailed_for(register, "s-001")),
        "bo@example.org": len(mailed_for(register, "s-002")),
    }
    for n in mailed(register):
        assert n.status == "delivered"
        assert n.attempts == 2


def mailed_for(register: Register, subject_id: str) -> list[Any]:
    return notice_rows(register, subject_id)


def test_a_refused_recipient_leaves_the_notice_pending_with_the_error(
    register: Register, smtp: MailServer
) -> None:
    seed(register)
    smtp.inbox.refuse_rcpt = "550 5.1.1 No such mailbox here"
    result = deliver(register, smtp.sender())
    assert result.delivered == 0
    assert result.failed == len(mailed(register))
    assert smtp.inbox.messages == []
    for n in mailed(register):
        assert n.status == "pending"
        assert n.attempts == 1
        assert n.next_attempt_at is not None
        assert "550" in n.last_error
        assert "No such mailbox" in n.last_error


def test_a_message_refused_after_data_is_not_marked_delivered(
    register: Register, smtp: MailServer
) -> None:
    seed(register)
    smtp.inbox.refuse_data = "554 5.6.0 Message rejected"
    result = deliver(register, smtp.sender())
    assert (result.delivered, result.failed) == (0, len(mailed(register)))
    for n in mailed(register):
        assert n.status == "pending"
        assert "554" in n.last_error


def test_one_notice_goes_to_exactly_the_registered_address(
    register: Register, smtp: MailServer
) -> None:
    activate_policy(register, WORKED_POLICY, actor="test", comment="seed")
    person = {"subject_id": "s-009", "name": "Eve", "email": "ada,eve@example.org"}
    report = import_subjects(register, rows([person]), actor="test", source="t")
    if report.rejected:  # refusing such an address at registration is fine too
        return
    file_rows(register, "city-tax", [record("T-9", "s-009", "tax.arrears", "2026-03-01")])
    deliver(register, smtp.sender())
    assert smtp.inbox.messages
    for tos, _ in smtp.inbox.messages:
        assert tos == ["ada,eve@example.org"], tos


class CrashingAfter:
    """Hands messages to a real SMTP server, then fails in a way that is no SMTP error."""

    def __init__(self, inner: SmtpSender, ok: int) -> None:
        self.inner, self.ok = inner, ok

    def send(self, to: str, subject: str, body: str) -> None:
        if self.ok == 0:
            raise RuntimeError("the worker was stopped")
        self.ok -= 1
        self.inner.send(to, subject, body)


def test_a_failure_mid_round_does_not_resend_what_the_server_already_accepted(
    register: Register, smtp: MailServer, clock: FixedDateClock
) -> None:
    seed(register)
    expected = mailed(register)
    with contextlib.suppress(RuntimeError):
        deliver(register, CrashingAfter(smtp.sender(), ok=2))
    assert len(smtp.inbox.messages) == 2
    # What was not sent is retried once its lease or backoff has passed, never before.
    assert deliver(register, smtp.sender()).delivered == 0
    clock.day += timedelta(days=1)
    deliver(register, smtp.sender())
    assert len(smtp.inbox.messages) == len(expected)  # each notice mailed once


def test_a_subject_without_e_mail_gets_the_notice_stored(
    register: Register, smtp: MailServer
) -> None:
    seed(register)
    deliver(register, smtp.sender())
    kept = notice_rows(register, "s-003")
    assert kept
    for n in kept:
        assert n.status == "stored"
        assert n.delivered_at is None
        assert n.last_error == "no e-mail address on file"
    assert {tos[0] for tos, _ in smtp.inbox.messages} == {"ada@example.org", "bo@example.org"}


def test_stored_only_keeps_every_notice_in_the_register(
    register: Register, smtp: MailServer
) -> None:
    seed(register)
    total = len(notice_rows(register))
    result = deliver(register, StoredOnly())
    assert (result.delivered, result.failed, result.kept) == (0, 0, total)
    assert {n.status for n in notice_rows(register)} == {"stored"}
    assert {n.last_error for n in notice_rows(register)} == {None}
    assert smtp.inbox.messages == []
    assert deliver(register, StoredOnly()).kept == 0


def test_backoff_doubles_and_is_capped_at_six_hours() -> None:
    assert timedelta(hours=6) == MAX_BACKOFF
    assert backoff(1) == timedelta(seconds=30)
    delays = [backoff(n) for n in range(1, 40)]
    for earlier, later in pairwise(delays):
        assert later == min(2 * earlier, timedelta(hours=6))
    assert backoff(10) == timedelta(seconds=30 * 2**9)  # 4 h 16 min: still under the cap
    assert backoff(11) == timedelta(hours=6)
    assert backoff(1000) == timedelta(hours=6)
    assert datetime(2026, 1, 1, tzinfo=UTC) + backoff(10**6) == datetime(2026, 1, 1, 6, tzinfo=UTC)
