"""`repository.record_facts_of` (a batch check's read) equals `record_facts` asked one by one.

Both engines: subjects with several records, with a record under objection, with none at
all, an id that is not registered, and more subjects than one statement takes.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from credo.services.cases import object_to_record
from credo.services.register import Register
from credo.store import repository
from credo.store.tables import records
from tests.factories import file_rows, record, seed_register


def _register(register: Register) -> list[str]:
    seed_register(register, subjects=7)
    file_rows(
        register,
        "city-court",
        [
            record("C-1", "s-001", "court.order_defiance", "2026-01-10"),
            record("C-2", "s-001", "court.order_defiance", "2026-03-01"),
            record("C-3", "s-004", "court.order_defiance", "2025-11-20"),
        ],
    )
    file_rows(
        register,
        "city-tax",
        [
            record("T-1", "s-002", "tax.arrears", "2026-01-01"),
            record("T-2", "s-004", "tax.arrears", "2026-02-10"),
            record("T-3", "s-006", "tax.arrears", "2025-06-30"),
        ],
    )
    with register.read() as conn:
        record_id = conn.execute(select(records.c.id).where(records.c.reference == "T-2")).scalar()
    object_to_record(register, "s-004", int(record_id), "The arrears were paid on time.")
    return ["s-006", "s-001", "s-003", "s-004", "s-002", "s-007", "s-005"]


@pytest.mark.parametrize("chunk", [500, 2])
def test_many_subjects_read_together_equal_each_read_alone(
    register: Register, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    wanted = _register(register)
    monkeypatch.setattr(repository, "FACTS_CHUNK", chunk)
    with register.read() as conn:
        together = repository.record_facts_of(conn, [*wanted, "s-999"])
        alone = {s: repository.record_facts(conn, s) for s in [*wanted, "s-999"]}
    assert together == alone
    assert list(together) == [*wanted, "s-999"]
    assert len(together["s-001"]) == 2 and together["s-003"] == []
    assert [len(f.disputes) for f in together["s-004"]] == [0, 1]
