"""`credo partition`: hash-partition a PostgreSQL register by subject, audited."""

from __future__ import annotations

from collections.abc import Callable

from credo.services.register import Register
from credo.store import audit
from credo.store.partitions import Partitioned, partition_register


def partition(
    register: Register,
    partitions: int,
    *,
    actor: str,
    progress: Callable[[Partitioned], None] | None = None,
) -> list[Partitioned]:
    """Partition the register's subject-keyed tables and log it, in one transaction."""
    with register.write() as conn:
        # The chain's lock first, as every writer of the chain takes it before the tables
        # (the inquiry log's `credo_log_inquiries` does, then writes `inquiries`): taken
        # after the tables' exclusive locks, a commit of inquiries could deadlock with it.
        audit.lock_chain(conn)
        moved = partition_register(conn, partitions, progress)
        audit.append(
            conn,
            actor=actor,
            action="register.partitioned",
            payload={
                "partitions": partitions,
                "tables": {item.table: item.rows for item in moved},
            },
            at=register.clock.now(),
        )
    return moved
