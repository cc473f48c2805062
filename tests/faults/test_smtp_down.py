"""The SMTP server down for the whole run (issue 6, faults).

Delivery rounds run day after day against a port where no mail server listens: no notice is
lost, each keeps its attempts, its error and its next try with backoff. Then a real SMTP
server (aiosmtpd) comes up and two `credo notices deliver` processes race for the same
notices: every notice is delivered exactly once.
"""

from __future__ import annotations

import subprocess
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from sqlalchemy import select

from credo.clock import FixedDateClock
from credo.services.notices import SmtpSender, backoff
from credo.services.notices import deliver as deliver_round
from credo.services.policies import activate_policy
from credo.services.register import Register
from credo.services.subjects import import_subjects
from credo.store.tables import notices
from tests.conftest import TODAY
from tests.factories import WORKED_POLICY, file_rows, record, rows
from tests.faults.conftest import Credo, free_port

PEOPLE = 30  # each with an e-mail address; one more without
DAYS_DOWN = 3


@dataclass
class Inbox:
    """An aiosmtpd handler keeping every accepted message."""

    messages: list[tuple[list[str], Message]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """Accept and keep the message."""
        self.messages.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
        return "250 Message accepted for delivery"


def seeded(register: Register) -> None:
    """PEOPLE people with an address and one without, and records that notify them all."""
    activate_policy(register, WORKED_POLICY, actor="test", comment="faults")
    people = [
        {"subject_id": f"s-{n:03d}", "name": f"Person {n}", "email": f"p{n}@example.org"}
        for n in range(1, PEOPLE + 1)
    ]
    people.append({"subject_id": "s-999", "name": "No Address"})
    assert import_subjects(register, rows(people), actor="test", source="t").stored == PEOPLE + 1
    court = [
        record(f"C-{n}", f"s-{n:03d}", "court.order_defiance", "2026-01-10")
        for n in range(1, PEOPLE + 1)
    ]
    court.append(record("C-999", "s-999", "court.order_defiance", "2026-01-10"))
    assert file_rows(register, "city-court", court).stored == PEOPLE + 1
    tax = [record(f"T-{n}", f"s-{n:03d}", "tax.arrears", "2026-02-01") for n in range(1, 11)]
    assert file_rows(register, "city-tax", tax).stored == 10


def notice_rows(register: Register) -> list[Any]:
    """Every notice, in id order."""
    with register.read() as conn:
        return list(conn.execute(select(notices).order_by(notices.c.id)).all())


def aware(value: datetime) -> datetime:
    """SQLite hands back naive UTC datetimes; PostgreSQL aware ones."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def deliver(credo: Credo, day: int) -> subprocess.CompletedProcess[str]:
    """`credo notices deliver` as a process, on TODAY + `day` days."""
    credo.today = TODAY + timedelta(days=day)
    result = credo.run("notices", "deliver", timeout=60)
    assert result.returncode == 0, result.stderr
    return result


def test_with_the_mail_server_down_nothing_is_lost_and_each_notice_goes_out_once(
    register: Register, database_url: str, clock: FixedDateClock, tmp_path: Path
) -> None:
    seeded(register)
    port = free_port()
    smtp_env = {
        "CREDO_SMTP_HOST": "127.0.0.1",
        "CREDO_SMTP_PORT": str(port),
        "CREDO_SMTP_FROM": "credo@register.example",
    }
    credo = Credo(tmp_path / "home", database_url, extra_env=smtp_env)
    written = notice_rows(register)
    mailed = [n for n in written if n.subject_id != "s-999"]
    assert len(mailed) >= PEOPLE + 10
    ids = [n.id for n in written]

    # Down for the whole run: every day's round fails every due notice and loses none.
    sender = SmtpSender("127.0.0.1", port, sender="credo@register.example", timeout=5)
    for day in range(DAYS_DOWN):
        clock.day = TODAY + timedelta(days=day)
        started = register.clock.now()
        result = deliver_round(register, sender)
        assert (result.delivered, result.failed) == (0, len(mailed))
        now = notice_rows(register)
        assert [n.id for n in now] == ids, "a notice was lost or added"
        for n in now:
            if n.subject_id == "s-999":
                assert n.status == "stored"  # no address: kept in the register, never mailed
                continue
            assert n.status == "pending" and n.delivered_at is None
            assert n.attempts == day + 1
            assert "refused" in n.last_error.lower(), n.last_error
            wait = aware(n.next_attempt_at) - started
            slack = timedelta(seconds=30)
            assert backoff(day + 1) <= wait + slack and wait <= backoff(day + 1) + slack
        # Tried again at once: not due yet, so nothing is tried and nothing changes.
        again = deliver_round(register, sender)
        assert (again.delivered, again.failed) == (0, 0)
        assert {n.attempts for n in notice_rows(register) if n.subject_id != "s-999"} == {day + 1}

    # The server comes up; two delivery processes race for the same notices.
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        credo.today = TODAY + timedelta(days=DAYS_DOWN)
        logs = [tmp_path / f"deliver-{n}.log" for n in range(2)]
        racers = [credo.start("notices", "deliver", log=log) for log in logs]
        for racer in racers:
            assert racer.wait(timeout=120) == 0
        delivered = [int(log.read_text().split(" delivered,")[0].split()[-1]) for log in logs]
        assert sum(delivered) == len(mailed), delivered  # each claimed by one process only
        assert deliver(credo, DAYS_DOWN).stdout.startswith("0 delivered, 0 to retry later")
    finally:
        controller.stop()

    after = notice_rows(register)
    assert [n.id for n in after] == ids
    assert len(inbox.messages) == len(mailed), "a notice was mailed twice or not at all"
    for n in after:
        if n.subject_id == "s-999":
            assert n.status == "stored"
            continue
        assert n.status == "delivered" and n.delivered_at is not None
        assert n.attempts == DAYS_DOWN + 1
    sent = Counter(tos[0] for tos, _ in inbox.messages)
    expected = Counter(f"p{int(n.subject_id[2:])}@example.org" for n in mailed)
    assert sent == expected
    assert all(len(tos) == 1 for tos, _ in inbox.messages)
    bodies = Counter((tos[0], str(m["Subject"]), str(m.get_payload())) for tos, m in inbox.messages)
    assert max(bodies.values()) == 1 or _same_kind_twice(mailed), bodies.most_common(3)


def _same_kind_twice(mailed: list[Any]) -> bool:
    """Whether some subject has two notices that render alike (then equal mails are fine)."""
    kinds = Counter((n.subject_id, n.kind, n.record_id, n.before, n.after) for n in mailed)
    return max(kinds.values()) > 1
