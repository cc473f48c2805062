"""People who log in: subjects, reviewers, admins and authority users, with sessions.

Passwords are hashed with argon2; a session is a random token whose SHA-256 is stored;
repeated failed logins for one username or from one client are throttled.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, insert, select

from credo.domain.errors import (
    AuthenticationError,
    ConflictError,
    Problem,
    ThrottledError,
    ValidationError,
)
from credo.services.register import Register
from credo.settings import Settings
from credo.store import audit, repository
from credo.store.tables import login_attempts, sessions, users

WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_USER = 5
MAX_FAILURES_PER_CLIENT = 20


@cache
def _hasher() -> PasswordHasher:
    """Argon2id with the cost the settings give (CREDO_PASSWORD_*)."""
    settings = Settings()
    return PasswordHasher(
        time_cost=settings.password_time_cost,
        memory_cost=settings.password_memory_kib,
        parallelism=settings.password_parallelism,
    )


@cache
def _dummy() -> str:
    """Verified against when the username is unknown, so both paths take the same time."""
    return _hasher().hash("credo-no-such-user")


class Role(StrEnum):
    """What a person may do."""

    SUBJECT = "subject"
    REVIEWER = "reviewer"
    ADMIN = "admin"
    AUTHORITY = "authority"


@dataclass(frozen=True)
class User:
    """A logged-in person."""

    id: int
    username: str
    role: Role
    subject_id: str | None
    authority_id: str | None


def add_user(
    register: Register,
    username: str,
    password: str,
    role: str,
    *,
    subject_id: str | None = None,
    authority_id: str | None = None,
    actor: str,
) -> User:
    """Create an account; a subject account is linked to one subject, an authority user to one
    authority of the active policy."""
    problems: list[Problem] = []
    if (
        not username
        or len(username) > 64
        or not username.replace("-", "")
        .replace(".", "")
        .replace("_", "")
        .replace("@", "")
        .isalnum()
    ):
        problems.append(Problem("username", "use 1-64 letters, digits, '.', '-', '_' or '@'"))
    if len(password) < 10:
        problems.append(Problem("password", "must be at least 10 characters long"))
    if role not in {r.value for r in Role}:
        problems.append(Problem("role", f"{role!r} is not one of {', '.join(Role)}"))
    if role == Role.SUBJECT and not subject_id:
        problems.append(Problem("subject_id", "a subject account must name its subject"))
    if role == Role.AUTHORITY and not authority_id:
        problems.append(Problem("authority_id", "an authority user must name its authority"))
    if role != Role.SUBJECT and subject_id:
        problems.append(Problem("subject_id", "only subject accounts are linked to a subject"))
    if role != Role.AUTHORITY and authority_id:
        problems.append(Problem("authority_id", "only authority users belong to an authority"))
    if problems:
        raise ValidationError("the account was refused", problems)
    now = register.clock.now()
    with register.write() as conn:
        if subject_id:
            repository.subject_row(conn, subject_id)
        if authority_id:
            _, policy = register.active_policy(conn)
            if authority_id not in policy.authority_by_id:
                raise ValidationError(
                    "the account was refused",
                    [Problem("authority_id", f"unknown authority {authority_id!r}")],
                )
        if conn.execute(select(users.c.id).where(users.c.username == username)).first():
            raise ConflictError(
                f"the username {username!r} is taken", [Problem("username", "taken")]
            )
        result = conn.execute(
            insert(users).values(
                username=username,
                password_hash=_hasher().hash(password),
                role=role,
                subject_id=subject_id,
                authority_id=authority_id,
                created_at=now,
            )
        )
        key = result.inserted_primary_key
        assert key is not None
        audit.append(
            conn,
            actor=actor,
            action="user.added",
            at=now,
            subject_id=subject_id,
            payload={"username": username, "role": role, "authority": authority_id},
        )
    return User(int(key[0]), username, Role(role), subject_id, authority_id)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def login(
    register: Register, username: str, password: str, *, client: str, hours: int = 8
) -> tuple[str, User]:
    """Check a password and open a session; returns the session token (shown once)."""
    now = register.clock.now()
    since = now - WINDOW
    with register.write() as conn:
        failures = conn.execute(
            select(func.count())
            .select_from(login_attempts)
            .where(
                login_attempts.c.username == username,
                login_attempts.c.at > since,
                ~login_attempts.c.ok,
            )
        ).scalar_one()
        from_client = conn.execute(
            select(func.count())
            .select_from(login_attempts)
            .where(
                login_attempts.c.client == client, login_attempts.c.at > since, ~login_attempts.c.ok
            )
        ).scalar_one()
        if failures >= MAX_FAILURES_PER_USER or from_client >= MAX_FAILURES_PER_CLIENT:
            raise ThrottledError("too many failed logins: wait 15 minutes before trying again")
        row = conn.execute(select(users).where(users.c.username == username)).first()
        ok = False
        try:
            ok = (
                _hasher().verify(row.password_hash if row else _dummy(), password)
                and row is not None
            )
        except (VerificationError, InvalidHashError):
            ok = False
        ok = ok and row is not None and not row.disabled
        conn.execute(
            insert(login_attempts).values(username=username[:64], client=client[:64], at=now, ok=ok)
        )
        if not ok or row is None:
            failed = AuthenticationError("the username or password is wrong")
        else:
            token = secrets.token_urlsafe(32)
            conn.execute(
                insert(sessions).values(
                    token_hash=_token_hash(token),
                    user_id=row.id,
                    created_at=now,
                    expires_at=now + timedelta(hours=hours),
                )
            )
            conn.execute(delete(sessions).where(sessions.c.expires_at < now))
            return token, User(
                row.id, row.username, Role(row.role), row.subject_id, row.authority_id
            )
    raise failed  # after the commit, so the failed attempt is counted


def session_user(register: Register, token: str) -> User:
    """The user a session token belongs to, or AuthenticationError when absent or expired."""
    now = register.clock.now()
    with register.read() as conn:
        row = conn.execute(
            select(users, sessions.c.expires_at)
            .join(sessions, sessions.c.user_id == users.c.id)
            .where(sessions.c.token_hash == _token_hash(token))
        ).first()
    if row is None or row.disabled or _aware(row.expires_at) <= now:
        raise AuthenticationError("the session has expired or is not valid: log in again")
    return User(row.id, row.username, Role(row.role), row.subject_id, row.authority_id)


def logout(register: Register, token: str) -> None:
    """End a session."""
    with register.write() as conn:
        conn.execute(delete(sessions).where(sessions.c.token_hash == _token_hash(token)))


def _aware(value: datetime) -> datetime:
    """SQLite hands back naive UTC times; make them comparable with the aware clock."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
