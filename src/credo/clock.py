"""The clock seam: the core never reads the time; services ask a Clock."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Protocol


class Clock(Protocol):
    """Where "now" comes from."""

    def today(self) -> date:
        """The register's current calendar date."""
        ...

    def now(self) -> datetime:
        """The current instant, in UTC."""
        ...


class SystemClock:
    """The machine's clock, in UTC."""

    def today(self) -> date:
        """Today's UTC date."""
        return datetime.now(UTC).date()

    def now(self) -> datetime:
        """The current UTC instant."""
        return datetime.now(UTC)


class FixedDateClock:
    """A clock pinned to one calendar date (demos, tests, what-if runs); time still moves."""

    def __init__(self, day: date) -> None:
        self.day = day

    def today(self) -> date:
        """The pinned date."""
        return self.day

    def now(self) -> datetime:
        """The pinned date with the machine's current time of day."""
        return datetime.combine(self.day, datetime.now(UTC).timetz())
