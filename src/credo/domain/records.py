"""What the scorer needs to know about a record, and when a record counts (DESIGN 5.1)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from credo.domain.durations import Duration
from credo.domain.policy import Category


@dataclass(frozen=True, slots=True)
class Dispute:
    """An objection: filed on `filed_on`, decided on `decided_on` (None while open)."""

    filed_on: date
    decided_on: date | None = None


@dataclass(frozen=True, slots=True)
class RecordFacts:
    """One version of a record as the scorer sees it.

    `counts_from`/`counts_until` bound the days this version stands for the record: a
    correction decided on day c ends the old version at c and starts the new one at c.
    """

    authority: str
    reference: str
    category: str
    decided_on: date
    repaired_on: date | None = None
    revoked: bool = False
    disputes: tuple[Dispute, ...] = field(default=())
    counts_from: date | None = None
    counts_until: date | None = None

    def sort_key(self) -> tuple[date, str, str]:
        """The order in which records count against a cap (DESIGN 5.2)."""
        return (self.decided_on, self.authority, self.reference)


def ends_on(record: RecordFacts, category: Category) -> date:
    """The first day the record no longer counts (validity, repair or supersession)."""
    end = category.valid_for.add_to(record.decided_on)
    if record.repaired_on is not None and record.repaired_on < end:
        end = record.repaired_on
    if record.counts_until is not None and record.counts_until < end:
        end = record.counts_until
    return end


def is_suspended(
    record: RecordFacts, category: Category, objection_period: Duration, day: date
) -> bool:
    """Whether an objection suspends the record on `day`."""
    for dispute in record.disputes:
        if dispute.decided_on is not None and day >= dispute.decided_on:
            continue
        if category.suspend_while_disputed and day >= dispute.filed_on:
            return True
        if day >= objection_period.add_to(dispute.filed_on):
            return True
    return False


def is_effective(
    record: RecordFacts, category: Category, objection_period: Duration, day: date
) -> bool:
    """DESIGN 5.1: not revoked, within its validity, in force as a version, not suspended."""
    if record.revoked:
        return False
    start = record.decided_on
    if record.counts_from is not None and record.counts_from > start:
        start = record.counts_from
    if not start <= day < ends_on(record, category):
        return False
    return not is_suspended(record, category, objection_period, day)
