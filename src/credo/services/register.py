"""The handle every service takes: the store's engine and the clock."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.engine import Connection

from credo.clock import Clock
from credo.domain.policy import Policy
from credo.store import repository


@dataclass
class Register:
    """A register: where it is stored and what day it is.

    >>> with register.write() as conn:  # one transaction, committed on success
    ...     ...
    """

    engine: Engine
    clock: Clock
    home: Path | None = None  # CREDO_HOME: where caches such as the preview snapshot live
    _policies: dict[int, Policy] = field(default_factory=dict)

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction (SQLite: takes the write lock at once)."""
        with self.engine.connect() as conn:
            conn.execution_options(credo_write=True)
            with conn.begin():
                yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """One read transaction."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    def active_policy(self, conn: Connection) -> tuple[int, Policy]:
        """The active policy version's id and parsed policy (parsed once per version)."""
        version_id, text_ = repository.active_policy_row(conn)
        if version_id not in self._policies:
            from credo.domain.policy_load import load_policy

            self._policies[version_id] = load_policy(text_, "stored policy")
        return version_id, self._policies[version_id]
