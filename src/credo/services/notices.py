"""Notices to the person on file: written with every change, delivered through an outbox.

Every service that changes something about a subject calls `notify` in its own transaction.
`deliver` sends what is pending through a `Sender`; a notice is marked delivered only after
the mail server accepted it, and a failed attempt is retried later with backoff.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any, Protocol

from sqlalchemy import insert, literal_column, select, union_all, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnClause

from credo.domain.policy import Policy
from credo.services.register import Register
from credo.store import repository
from credo.store.db import is_sqlite
from credo.store.tables import RECORD_FILED, notices, records, subjects

MAX_BACKOFF = timedelta(hours=6)
FIRST_RETRY = timedelta(seconds=30)


class Sender(Protocol):
    """Where notices go beyond the register itself."""

    def send(self, to: str, subject: str, body: str) -> None:
        """Hand one message over; raise if the receiving server did not accept it."""
        ...


class StoredOnly:
    """The default: notices are kept in the register and read there, never mailed."""

    def send(self, to: str, subject: str, body: str) -> None:
        """Nothing to do."""


@dataclass(frozen=True)
class SmtpSender:
    """Delivers notices by e-mail through an SMTP server."""

    host: str
    port: int
    sender: str
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    timeout: float = 10.0

    def send(self, to: str, subject: str, body: str) -> None:
        """Send one message; smtplib raises unless the server accepted it."""
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = to
        message["Subject"] = subject
        message.set_content(body)
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self.username:
                smtp.login(self.username, self.password or "")
            refused = smtp.send_message(message, from_addr=self.sender, to_addrs=[to])
            if refused:
                raise smtplib.SMTPRecipientsRefused(refused)


def notify(
    conn: Connection,
    subject_id: str,
    kind: str,
    now: datetime,
    *,
    record_id: int | None = None,
    case_id: int | None = None,
    before: str | None = None,
    after: str | None = None,
    message: str | None = None,
) -> None:
    """Write one notice for the subject, inside the caller's transaction."""
    conn.execute(
        insert(notices).values(
            subject_id=subject_id,
            kind=kind,
            record_id=record_id,
            case_id=case_id,
            before=before,
            after=after,
            message=message,
            created_at=now,
            status="pending",
            attempts=0,
        )
    )


FILED_COLUMNS = ("subject_id", "record_id", "kind", "created_at", "status", "attempts")


def filed_copy_text(filed: Iterable[tuple[str, int]], now: datetime) -> str:
    """PostgreSQL: the `record.filed` notices of (subject id, record id) pairs as COPY text
    for FILED_COLUMNS."""
    tail = f"\t{RECORD_FILED}\t{now.isoformat()}\tpending\t0\n"
    return "".join(f"{repository.copy_escape(s)}\t{i}{tail}" for s, i in filed)


def notify_records(conn: Connection, filed: list[tuple[str, int]], now: datetime) -> None:
    """PostgreSQL: one `record.filed` notice per (subject id, record id) just stored, in one
    COPY (SQLite: `notify_stored`).

    A subject's filings' notices are found through its records (`notices_of`), so the record
    must be the subject's: both come from the same stored row.
    """
    repository.copy_text(conn, "notices", FILED_COLUMNS, filed_copy_text(filed, now))


# SQLite: the notices of the records stored under a range of ids, read back from the rows
# just written (still in the page cache), so that no pair passes through Python: 0.02 s for
# 100,000 notices, where binding the pairs one by one took 0.08 s.
_FILED_FROM_RECORDS = (
    f"INSERT INTO notices ({', '.join(FILED_COLUMNS)}) "
    "SELECT subject_id, id, ?, ?, 'pending', 0 FROM records WHERE id BETWEEN ? AND ? ORDER BY id"
)


def notify_stored(conn: Connection, first: int, last: int, now: datetime) -> None:
    """SQLite: one `record.filed` notice for each record stored under an id from `first` to
    `last`, in id order (as `notify_records` writes them)."""
    conn.exec_driver_sql(_FILED_FROM_RECORDS, (RECORD_FILED, now.isoformat(sep=" "), first, last))


def _split(pair: str | None) -> tuple[list[str], list[str]]:
    lists, _, measures = (pair or "|").partition("|")
    return [x for x in lists.split(",") if x], [x for x in measures.split(",") if x]


TITLES = {
    RECORD_FILED: "A record about you was filed",
    "record.corrected": "A record about you was corrected",
    "record.revoked": "A record about you was revoked",
    "record.repaired": "A record about you was repaired",
    "standing.changed": "Your lists or measures changed",
    "objection.filed": "Your objection was received",
    "objection.decided": "Your objection was decided",
    "repair.requested": "Your repair request was received",
    "repair.decided": "Your repair request was decided",
    "review.requested": "Your request for human review was received",
    "review.decided": "Your request for human review was decided",
    "policy.changed": "The register's policy changed",
}


def render(row: Any, policy: Policy | None, record: Any | None = None) -> tuple[str, str]:
    """The title and text of a notice, in plain words."""
    title = TITLES.get(row.kind, row.kind)
    lines: list[str] = []
    if record is not None:
        name = (
            policy.category_by_id[record.category].name
            if policy and record.category in policy.category_by_id
            else record.category
        )
        lines.append(
            f"{record.authority_id} filed {record.reference} ({name}), decided on "
            f"{record.decided_on}, under {record.legal_basis}."
        )
    if row.kind == "standing.changed":
        old_lists, old_measures = _split(row.before)
        new_lists, new_measures = _split(row.after)
        for item in sorted(set(new_lists) - set(old_lists)):
            lines.append(f"You entered the list {_list_name(policy, item)}.")
        for item in sorted(set(old_lists) - set(new_lists)):
            lines.append(f"You left the list {_list_name(policy, item)}.")
        for item in sorted(set(new_measures) - set(old_measures)):
            lines.append(f"A measure now applies to you: {_measure_text(policy, item)}.")
        for item in sorted(set(old_measures) - set(new_measures)):
            lines.append(f"A measure no longer applies to you: {_measure_text(policy, item)}.")
    if row.kind == "policy.changed":
        lines += _standing_lines(policy, row.before, row.after)
    if row.message:
        lines.append(row.message)
    lines.append("You can see your whole file, object to a record or ask for repair or review.")
    return title, "\n".join(lines)


def _standing_lines(policy: Policy | None, before: str | None, after: str | None) -> list[str]:
    """A `score|grade|lists|measures` change in words."""
    old = (before or "|||").split("|")
    new = (after or "|||").split("|")
    lines = []
    if old[0] and old[0] != new[0]:
        lines.append(f"Your score went from {old[0]} to {new[0]}.")
    elif not old[0]:
        lines.append(f"Your score is {new[0]}.")
    if old[1] != new[1]:
        lines.append(f"Your grade went from {old[1] or '-'} to {new[1]}.")
    for item in sorted(set(_items(new[2])) - set(_items(old[2]))):
        lines.append(f"You entered the list {_list_name(policy, item)}.")
    for item in sorted(set(_items(old[2])) - set(_items(new[2]))):
        lines.append(f"You left the list {_list_name(policy, item)}.")
    for item in sorted(set(_items(new[3])) - set(_items(old[3]))):
        lines.append(f"A measure now applies to you: {_measure_text(policy, item)}.")
    for item in sorted(set(_items(old[3])) - set(_items(new[3]))):
        lines.append(f"A measure no longer applies to you: {_measure_text(policy, item)}.")
    return lines


def _items(value: str) -> list[str]:
    return [x for x in value.split(",") if x]


def _list_name(policy: Policy | None, list_id: str) -> str:
    rule = policy.list_by_id.get(list_id) if policy else None
    return f"{rule.name} ({list_id})" if rule else list_id


def _measure_text(policy: Policy | None, measure_id: str) -> str:
    if policy:
        for measure in policy.measures:
            if measure.id == measure_id:
                return f"{measure.text} ({measure.authority}, {measure_id})"
    return measure_id


def backoff(attempts: int) -> timedelta:
    """How long to wait before the next try after `attempts` failures."""
    delay: timedelta = FIRST_RETRY * (2 ** min(max(attempts - 1, 0), 20))
    return min(delay, MAX_BACKOFF)


@dataclass
class Delivery:
    """What one delivery round did."""

    delivered: int = 0
    failed: int = 0
    kept: int = 0


LEASE = timedelta(minutes=5)


def deliver(register: Register, sender: Sender, *, limit: int = 500) -> Delivery:
    """Send the pending notices that are due; failures are retried later with backoff.

    The due notices are first claimed for a short lease (so that a second worker skips
    them), then each one is sent and marked in its own transaction: a notice is marked
    delivered only after the server accepted it, and a crash mid-round loses nothing.
    """
    result = Delivery()
    now = register.clock.now()
    mail = not isinstance(sender, StoredOnly)
    with register.write() as conn:
        query = (
            select(notices, subjects.c.email)
            .join(subjects, subjects.c.id == notices.c.subject_id)
            .where(notices.c.status == "pending")
            .where((notices.c.next_attempt_at.is_(None)) | (notices.c.next_attempt_at <= now))
            .order_by(notices.c.id)
            .limit(limit)
        )
        if not is_sqlite(conn):
            query = query.with_for_update(of=notices, skip_locked=True)
        due = conn.execute(query).all()
        if not mail:
            ids = [row.id for row in due]
            for start in range(0, len(ids), 5_000):
                conn.execute(
                    update(notices)
                    .where(notices.c.id.in_(ids[start : start + 5_000]))
                    .values(status="stored")
                )
            result.kept = len(ids)
            return result
        claimed = [row.id for row in due]
        for start in range(0, len(claimed), 5_000):
            conn.execute(
                update(notices)
                .where(notices.c.id.in_(claimed[start : start + 5_000]))
                .values(next_attempt_at=now + LEASE)
            )
        policy = _policy(register, conn)
    for row in due:
        if not row.email:
            with register.write() as conn:
                conn.execute(
                    update(notices)
                    .where(notices.c.id == row.id)
                    .values(status="stored", last_error="no e-mail address on file")
                )
            result.kept += 1
            continue
        with register.read() as conn:
            record = (
                conn.execute(select(records).where(records.c.id == row.record_id)).first()
                if row.record_id
                else None
            )
        title, body = render(row, policy, record)
        try:
            sender.send(row.email, f"credo: {title}", body)
        except Exception as exc:  # any failure: keep the notice and try again later
            attempts = row.attempts + 1
            with register.write() as conn:
                conn.execute(
                    update(notices)
                    .where(notices.c.id == row.id)
                    .values(
                        attempts=attempts,
                        next_attempt_at=register.clock.now() + backoff(attempts),
                        last_error=f"{type(exc).__name__}: {exc}"[:500],
                    )
                )
            result.failed += 1
            continue
        with register.write() as conn:
            conn.execute(
                update(notices)
                .where(notices.c.id == row.id)
                .values(
                    status="delivered", delivered_at=register.clock.now(), attempts=row.attempts + 1
                )
            )
        result.delivered += 1
    return result


def _policy(register: Register, conn: Connection) -> Policy | None:
    from credo.domain.errors import NoActivePolicyError

    try:
        return register.active_policy(conn)[1]
    except NoActivePolicyError:
        return None


def sender_from_settings(settings: Any) -> Sender:
    """SMTP when CREDO_SMTP_HOST is set, otherwise stored-only."""
    if not settings.smtp_host:
        return StoredOnly()
    return SmtpSender(
        host=settings.smtp_host,
        port=settings.smtp_port,
        sender=settings.smtp_from,
        username=settings.smtp_username,
        password=settings.smtp_password,
        starttls=settings.smtp_starttls,
    )


def notices_of(conn: Connection, subject_id: str, policy: Policy | None) -> list[dict[str, Any]]:
    """A subject's notices, newest first, rendered."""
    # Two branches, each served by its partial index (tables.notices): the filings' notices
    # through the subject's records. The kind is written as a literal: a bound parameter
    # would not prove the index's condition to a generic plan.
    filed: ColumnClause[str] = literal_column(f"'{RECORD_FILED}'")
    others = select(notices).where(notices.c.subject_id == subject_id, notices.c.kind != filed)
    filings = (
        select(notices)
        .join(records, records.c.id == notices.c.record_id)
        .where(
            records.c.subject_id == subject_id,
            notices.c.subject_id == subject_id,
            notices.c.kind == filed,
        )
    )
    both = union_all(others, filings).subquery()
    rows = conn.execute(select(both).order_by(both.c.id.desc())).all()
    record_ids = {r.record_id for r in rows if r.record_id}
    by_id = (
        {r.id: r for r in conn.execute(select(records).where(records.c.id.in_(sorted(record_ids))))}
        if record_ids
        else {}
    )
    result = []
    for row in rows:
        title, body = render(row, policy, by_id.get(row.record_id))
        result.append(
            {
                "id": row.id,
                "kind": row.kind,
                "title": title,
                "text": body,
                "record_id": row.record_id,
                "case_id": row.case_id,
                "created_at": row.created_at.isoformat(),
                "delivery": row.status,
                "delivered_at": row.delivered_at.isoformat() if row.delivered_at else None,
            }
        )
    return result
