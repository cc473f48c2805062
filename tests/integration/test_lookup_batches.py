"""Concurrent standing lookups on one event loop share statements (credo.services.standing).

Every lookup must get exactly the rows, the answer and the error it would get alone: many
asked at once on one loop, with known and unknown subjects, a wrong key and a record under
objection, are held equal to the same lookups asked one by one; one lookup carrying a value
PostgreSQL refuses fails alone; and the lookups did share statements.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from sqlalchemy import text

from credo.services import standing
from credo.services.cases import object_to_record
from credo.services.keys import add_key
from credo.services.register import Register
from tests.factories import file_rows, record, seed_register, standings_on_one_loop

WRONG_KEY = "credo_000000000000_wrong"


def _comparable(answer: Any) -> Any:
    return (type(answer).__name__, str(answer)) if isinstance(answer, Exception) else answer


@pytest.fixture
def filed(pg_register: Register) -> tuple[Register, str]:
    """Five subjects; s-001 with two records (one under objection), s-002 with one."""
    register = pg_register
    seed_register(register, subjects=5)
    file_rows(
        register,
        "city-court",
        [
            record("R-1", "s-001", "court.order_defiance", "2026-01-10"),
            record("R-2", "s-001", "court.order_defiance", "2026-02-10"),
            record("R-3", "s-002", "court.order_defiance", "2026-02-11"),
        ],
    )
    with register.read() as conn:
        record_id = conn.execute(
            text("SELECT id FROM records WHERE reference = 'R-2'")
        ).scalar_one()
    object_to_record(register, "s-001", record_id, "The order was obeyed.")
    return register, add_key(register, "city-personnel", actor="test")


def test_lookups_asked_together_answer_as_each_alone(
    filed: tuple[Register, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    register, key = filed
    asks = [
        (WRONG_KEY if n % 7 == 3 else key, f"s-00{n % 6 + 1}")  # s-006 is not registered
        for n in range(60)
    ]
    alone = [standings_on_one_loop(register, [ask])[0] for ask in asks]
    statements: list[int] = []
    fetch = standing.AsyncLookups._fetch

    async def counted(self: standing.AsyncLookups, batch: list[Any]) -> list[list[Any]]:
        statements.append(len(batch))
        return await fetch(self, batch)

    monkeypatch.setattr(standing.AsyncLookups, "_fetch", counted)
    together = standings_on_one_loop(register, asks)

    assert [_comparable(a) for a in together] == [_comparable(a) for a in alone]
    kinds = {type(a).__name__ for a in together}
    assert kinds == {"dict", "AuthenticationError", "NotFoundError"}, kinds
    assert together[0]["lists"] == ["dishonest"]
    assert sum(statements) == len(asks)
    assert len(statements) < len(asks) // 4, statements  # shared: a few statements in all


def test_a_value_postgresql_refuses_fails_only_its_own_lookup(
    filed: tuple[Register, str],
) -> None:
    register, key = filed
    asks = [(key, "s-001"), (key, "s-0\x0002"), (key, "s-002"), (key, "s-003")]
    answers = standings_on_one_loop(register, asks)
    assert isinstance(answers[1], psycopg.DataError), answers[1]
    assert [a["subject_id"] for n, a in enumerate(answers) if n != 1] == [
        "s-001",
        "s-002",
        "s-003",
    ]
