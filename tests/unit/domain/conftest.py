"""Fixtures for the pure core (credo.domain).

Fixture strategy: nothing here touches I/O or a clock. Policies are built from TOML text
through the real loader, so the tests go the way a user's policy file goes; each test
module keeps its own policy text beside its tests so the numbers asserted on stay in view.
Records come from the `make_record` factory, which fills in every field a test does not
care about. The property tests build records in their own hypothesis strategies.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest

from credo.domain.records import Dispute, RecordFacts


@pytest.fixture(scope="session")
def make_record() -> Callable[..., RecordFacts]:
    """Build a RecordFacts; dates may be ISO strings, disputes (filed, decided) pairs.

    >>> make_record("tax.arrears", "2026-01-10", disputes=[("2026-02-01", None)])
    """
    numbers = itertools.count(1)

    def make(category: str, decided_on: date | str, **fields: Any) -> RecordFacts:
        fields.setdefault("authority", "city-court")
        fields.setdefault("reference", f"REF-{next(numbers):05d}")
        for key in ("repaired_on", "counts_from", "counts_until"):
            fields[key] = _day(fields.get(key))
        fields["disputes"] = tuple(
            d if isinstance(d, Dispute) else Dispute(_day(d[0]), _day(d[1]))
            for d in fields.get("disputes", ())
        )
        return RecordFacts(category=category, decided_on=_day(decided_on), **fields)

    return make


def _day(value: date | str | None) -> date | None:
    return date.fromisoformat(value) if isinstance(value, str) else value
