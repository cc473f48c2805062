"""Fixtures for the pure core (credo.domain).

Fixture strategy: nothing here touches I/O or a clock, so every fixture is a plain
factory. Policies are built from TOML text through the real loader (`policy_from`), so the
tests go the same way a user's policy file goes; each test module keeps its own policy
text beside its tests so the numbers asserted on stay in view. Records come from
`make_record`, which fills in every field a test does not care about. The factories are
session-scoped because they hold no state (and hypothesis refuses function-scoped ones).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest

from credo.domain.policy import Policy
from credo.domain.policy_load import load_policy
from credo.domain.records import Dispute, RecordFacts


@pytest.fixture(scope="session")
def policy_from() -> Callable[[str], Policy]:
    """Load a policy from TOML text; a load failure fails the test loudly."""
    return load_policy


@pytest.fixture(scope="session")
def make_record() -> Callable[..., RecordFacts]:
    """Build a RecordFacts; `reference` defaults to a fresh number, dates may be ISO strings."""
    numbers = itertools.count(1)

    def make(category: str, decided_on: date | str, **fields: Any) -> RecordFacts:
        fields.setdefault("authority", "city-court")
        fields.setdefault("reference", f"REF-{next(numbers):05d}")
        for key in ("repaired_on", "counts_from", "counts_until"):
            if isinstance(fields.get(key), str):
                fields[key] = date.fromisoformat(fields[key])
        disputes = fields.pop("disputes", ())
        fields["disputes"] = tuple(
            d if isinstance(d, Dispute) else Dispute(*(_day(x) for x in d)) for d in disputes
        )
        return RecordFacts(category=category, decided_on=_day(decided_on), **fields)

    return make


def _day(value: date | str | None) -> date | None:
    return date.fromisoformat(value) if isinstance(value, str) else value
