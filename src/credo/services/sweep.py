"""Expiry without full rescans: rescore only the subjects whose standing may have changed
since standings were last stored (records that ended, objections that fell due)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from credo.services.register import Register
from credo.store import audit
from credo.store.rescore import catch_up, lock_register


@dataclass(frozen=True)
class Sweep:
    """What a sweep did."""

    as_of: date
    rescored: int


def sweep(register: Register, *, actor: str = "sweep") -> Sweep:
    """Bring stored standings to today, writing the notices of every change."""
    today, now = register.clock.today(), register.clock.now()
    with register.write() as conn:
        lock_register(conn, exclusive=True)
        version_id, policy = register.active_policy(conn)
        count = catch_up(conn, policy, version_id, today, now)
        if count:
            audit.append(
                conn,
                actor=actor,
                action="register.swept",
                at=now,
                payload={"as_of": today.isoformat(), "rescored": count},
            )
    return Sweep(today, count)
