"""API keys for authorities: shown once, stored only as a hash."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from credo.domain.errors import AuthenticationError, ValidationError
from credo.services.register import Register
from credo.store import audit
from credo.store.db import is_sqlite
from credo.store.tables import api_keys


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def add_key(register: Register, authority_id: str, *, actor: str) -> str:
    """Create a key for an authority of the active policy; returns the key (shown once)."""
    now = register.clock.now()
    with register.write() as conn:
        _, policy = register.active_policy(conn)
        if authority_id not in policy.authority_by_id:
            known = ", ".join(sorted(policy.authority_by_id))
            raise ValidationError(
                f"authority {authority_id!r} is not declared in the active policy (known: {known})"
            )
        prefix = secrets.token_hex(6)
        key = f"credo_{prefix}_{secrets.token_urlsafe(32)}"
        conn.execute(
            api_keys.insert().values(
                authority_id=authority_id, prefix=prefix, key_hash=_hash(key), created_at=now
            )
        )
        audit.append(
            conn,
            actor=actor,
            action="key.created",
            at=now,
            payload={"authority": authority_id, "prefix": prefix},
        )
    return key


@contextmanager
def autocommit_reads(register: Register) -> Iterator[Connection]:
    """A connection for reads that need no snapshot across statements (the hot paths).

    On PostgreSQL each statement commits by itself: no BEGIN and no ROLLBACK round trips.
    On SQLite it is an ordinary read transaction.
    """
    if is_sqlite(register.engine):
        with register.read() as conn:
            yield conn
        return
    with register.engine.connect() as conn:
        yield conn.execution_options(isolation_level="AUTOCOMMIT")


def key_prefix(key: str) -> str:
    """The public prefix of a key (`credo_<prefix>_<secret>`), or AuthenticationError."""
    parts = key.split("_")
    if len(parts) < 3 or parts[0] != "credo":
        raise AuthenticationError("the API key is malformed")
    return parts[1]


def key_authority(row: Sequence[Any] | None, key: str) -> str:
    """The authority of a stored key row (authority_id, key_hash, revoked_at) found by the
    key's prefix, or AuthenticationError when there is none, it is revoked or the key differs."""
    if (
        row is None
        or row[0] is None
        or row[2] is not None
        or not hmac.compare_digest(row[1], _hash(key))
    ):
        raise AuthenticationError("the API key is not valid")
    return str(row[0])


def authenticate(register: Register, key: str) -> str:
    """The authority a key belongs to, or AuthenticationError (checked on every request, so a
    revoked key is refused at once)."""
    prefix = key_prefix(key)
    with autocommit_reads(register) as conn:
        row = conn.execute(
            select(api_keys.c.authority_id, api_keys.c.key_hash, api_keys.c.revoked_at).where(
                api_keys.c.prefix == prefix
            )
        ).first()
    return key_authority(row, key)
