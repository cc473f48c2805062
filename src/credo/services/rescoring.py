"""Full rescoring of the register, set-based inside the database."""

from __future__ import annotations

from datetime import date

from credo.services.register import Register
from credo.store import audit
from credo.store.rescore import lock_register, rescore_all


def rescore_everyone(
    register: Register, as_of: date | None = None, *, actor: str = "cli"
) -> tuple[int, date]:
    """Recompute and store every subject's standing as of a day (default today)."""
    day = as_of or register.clock.today()
    with register.write() as conn:
        lock_register(conn, exclusive=True)
        version_id, policy = register.active_policy(conn)
        count = rescore_all(conn, policy, version_id, day, register.clock.now())
        audit.append(
            conn,
            actor=actor,
            action="register.rescored",
            at=register.clock.now(),
            payload={"policy": policy.label, "as_of": day.isoformat(), "subjects": count},
        )
    return count, day
