"""`credo audit verify` finds every change made behind the application's back, on both stores."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.engine import Connection

from credo.domain.filing import record_hash
from credo.services.audit_verify import verify_audit
from credo.services.register import Register
from credo.services.standing import query_standing
from credo.store.tables import (
    audit_entries,
    batches,
    inquiries,
    notices,
    records,
    standings,
    subjects,
)
from tests.factories import file_rows, record, seed_register


def build(register: Register) -> dict[str, int]:
    """Audit entries #1 policy, #2 subjects, #3 court batch (2 records), #4 tax batch, #5 inquiry.

    Returns the batch id of each records batch by its audit entry's number.
    """
    seed_register(register, subjects=3)
    assert (
        file_rows(
            register,
            "city-court",
            [
                record("R-1", "s-001", "court.order_defiance", "2026-01-10"),
                record("R-2", "s-002", "court.order_defiance", "2026-03-01"),
            ],
        ).stored
        == 2
    )
    assert (
        file_rows(
            register,
            "city-tax",
            [
                record("T-1", "s-003", "tax.arrears", "2026-02-01", amount="1200.50"),
            ],
        ).stored
        == 1
    )
    shown = query_standing(
        register, authority_id="city-personnel", subject_id="s-001", purpose_id="promotion-review"
    )
    assert shown["lists"] == ["dishonest"]
    with register.read() as conn:
        entries = conn.execute(select(audit_entries).order_by(audit_entries.c.seq)).all()
    assert [(e.seq, e.action) for e in entries] == [
        (1, "policy.activated"),
        (2, "subjects.imported"),
        (3, "records.filed"),
        (4, "records.filed"),
        (5, "inquiries.logged"),
    ]
    return {
        e.seq: json.loads(e.payload)["batch_id"] for e in entries if e.action == "records.filed"
    }


def _record(conn: Connection, reference: str) -> Any:
    return conn.execute(select(records).where(records.c.reference == reference)).one()


def update_summary(conn: Connection, batch: dict[int, int]) -> list[str]:
    conn.execute(update(records).where(records.c.reference == "R-1").values(summary="nothing"))
    return ["#3", "R-1"]


def update_summary_and_row_hash(conn: Connection, batch: dict[int, int]) -> list[str]:
    row = _record(conn, "R-1")
    forged = record_hash(
        row.authority_id,
        row.reference,
        row.version,
        row.subject_id,
        row.category,
        row.decided_on,
        row.occurred_on,
        row.legal_basis,
        "nothing",
        row.amount,
        row.evidence_uri,
    )
    conn.execute(
        update(records).where(records.c.id == row.id).values(summary="nothing", row_hash=forged)
    )
    return ["#3", "digest"]


def update_amount_and_row_hash(conn: Connection, batch: dict[int, int]) -> list[str]:
    row = _record(conn, "T-1")
    forged = record_hash(
        row.authority_id,
        row.reference,
        row.version,
        row.subject_id,
        row.category,
        row.decided_on,
        row.occurred_on,
        row.legal_basis,
        row.summary,
        "1.00",
        row.evidence_uri,
    )
    conn.execute(
        update(records).where(records.c.id == row.id).values(amount="1.00", row_hash=forged)
    )
    return ["#4"]


def delete_record(conn: Connection, batch: dict[int, int]) -> list[str]:
    conn.execute(delete(records).where(records.c.reference == "R-2"))
    return ["#3", "2 rows", "1 are left"]


def delete_a_whole_batch(conn: Connection, batch: dict[int, int]) -> list[str]:
    conn.execute(delete(records).where(records.c.reference == "T-1"))
    return ["#4", "gone"]


def _forged_record(
    conn: Connection, batch_id: int, reference: str, version: int = 1
) -> dict[str, Any]:
    values: dict[str, Any] = {
        "authority_id": "city-court",
        "reference": reference,
        "version": version,
        "subject_id": "s-003",
        "category": "court.order_defiance",
        "decided_on": date(2026, 3, 2),
        "occurred_on": None,
        "legal_basis": "Test Law art. 1",
        "summary": "forged",
        "amount": None,
        "evidence_uri": None,
        "batch_id": batch_id,
        "filed_at": datetime(2026, 3, 15, 12, tzinfo=UTC),
        "ends_on": date(2028, 3, 2),
        "revoked": False,
    }
    values["row_hash"] = record_hash(
        values["authority_id"],
        reference,
        version,
        "s-003",
        values["category"],
        values["decided_on"],
        None,
        values["legal_basis"],
        "forged",
        None,
        None,
    )
    conn.execute(insert(records).values(**values))
    return values


def _new_batch(conn: Connection) -> int:
    result = conn.execute(
        insert(batches).values(
            kind="records",
            source="forged.csv",
            authority_id="city-court",
            created_at=datetime(2026, 3, 15, 12, tzinfo=UTC),
        )
    )
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def insert_record_in_a_new_batch(conn: Connection, batch: dict[int, int]) -> list[str]:
    batch_id = _new_batch(conn)
    _forged_record(conn, batch_id, "FORGED-1")
    return [f"batch {batch_id}"]


def insert_record_in_an_existing_batch(conn: Connection, batch: dict[int, int]) -> list[str]:
    _forged_record(conn, batch[4], "FORGED-2")
    return ["#4", "stored 1 rows, 2 are left"]


def insert_second_version_in_a_new_batch(conn: Connection, batch: dict[int, int]) -> list[str]:
    # A "correction" of R-1 that no service ever made: it would change the score.
    batch_id = _new_batch(conn)
    row = _record(conn, "R-1")
    conn.execute(
        insert(records).values(
            authority_id=row.authority_id,
            reference=row.reference,
            version=2,
            subject_id=row.subject_id,
            category=row.category,
            decided_on=row.decided_on,
            legal_basis=row.legal_basis,
            summary="forged correction",
            batch_id=batch_id,
            row_hash=record_hash(
                row.authority_id,
                row.reference,
                2,
                row.subject_id,
                row.category,
                row.decided_on,
                None,
                row.legal_basis,
                "forged correction",
                None,
                None,
            ),
            filed_at=datetime(2026, 3, 15, 12, tzinfo=UTC),
            ends_on=date(2028, 1, 10),
            revoked=False,
            counts_from=date(2026, 1, 10),
        )
    )
    return [f"batch {batch_id}"]


def update_audit_payload(conn: Connection, batch: dict[int, int]) -> list[str]:
    payload = json.dumps(
        {
            "batch_id": batch[4],
            "authority": "city-tax",
            "source": "test",
            "stored": 1,
            "first_record_id": 0,
            "last_record_id": 0,
        }
    )
    conn.execute(update(audit_entries).where(audit_entries.c.seq == 4).values(payload=payload))
    return ["#4", "changed"]


def update_audit_actor(conn: Connection, batch: dict[int, int]) -> list[str]:
    conn.execute(update(audit_entries).where(audit_entries.c.seq == 5).values(actor="nobody"))
    return ["#5"]


def delete_middle_audit_entry(conn: Connection, batch: dict[int, int]) -> list[str]:
    conn.execute(delete(audit_entries).where(audit_entries.c.seq == 3))
    return ["#3", "missing"]


def update_subject_name(conn: Connection, batch: dict[int, int]) -> list[str]:
    conn.execute(update(subjects).where(subjects.c.id == "s-002").values(name="Someone Else"))
    return ["'s-002'", "changed"]


def delete_subject(conn: Connection, batch: dict[int, int]) -> list[str]:
    # s-003's records go first so that the foreign keys allow it; #4 then lost all its rows.
    conn.execute(delete(standings).where(standings.c.subject_id == "s-003"))
    conn.execute(delete(notices).where(notices.c.subject_id == "s-003"))
    conn.execute(delete(records).where(records.c.subject_id == "s-003"))
    conn.execute(delete(subjects).where(subjects.c.id == "s-003"))
    return ["#2", "3 rows, 2 are left"]


def delete_inquiry(conn: Connection, batch: dict[int, int]) -> list[str]:
    # Hiding who looked at a file.
    conn.execute(delete(inquiries))
    return ["#5", "all 1 of its inquiries are gone"]


def update_inquiry_purpose(conn: Connection, batch: dict[int, int]) -> list[str]:
    conn.execute(update(inquiries).values(purpose="tax-check"))
    return ["#5", "digest"]


def uncover_inquiry(conn: Connection, batch: dict[int, int]) -> list[str]:
    # Passing the row off as one logged before migration 0010, with no digest over it.
    conn.execute(update(inquiries).values(audit_seq=None))
    return ["#5", "gone"]


def insert_inquiry(conn: Connection, batch: dict[int, int]) -> list[str]:
    conn.execute(
        insert(inquiries).values(
            subject_id="s-002",
            authority_id="city-personnel",
            purpose="promotion-review",
            as_of=date(2026, 3, 15),
            at=datetime(2026, 3, 15, 12, tzinfo=UTC),
            channel="api",
            audit_seq=5,
        )
    )
    return ["#5", "it logged 1 inquiries, 2 are left"]


TAMPERS: list[Callable[[Connection, dict[int, int]], list[str]]] = [
    update_summary,
    update_summary_and_row_hash,
    update_amount_and_row_hash,
    delete_record,
    delete_a_whole_batch,
    insert_record_in_a_new_batch,
    insert_record_in_an_existing_batch,
    insert_second_version_in_a_new_batch,
    update_audit_payload,
    update_audit_actor,
    delete_middle_audit_entry,
    update_subject_name,
    delete_subject,
    delete_inquiry,
    update_inquiry_purpose,
    uncover_inquiry,
    insert_inquiry,
]


def test_an_untouched_register_verifies(register: Register) -> None:
    build(register)
    result = verify_audit(register)
    assert result.problems == []
    assert result.ok
    assert (result.entries, result.records, result.subjects, result.inquiries) == (5, 3, 3, 1)


def test_verification_changes_nothing(register: Register) -> None:
    build(register)
    with register.read() as conn:
        before = conn.execute(select(func.count()).select_from(audit_entries)).scalar_one()
    assert verify_audit(register).ok
    assert verify_audit(register).ok
    with register.read() as conn:
        assert conn.execute(select(func.count()).select_from(audit_entries)).scalar_one() == before


@pytest.mark.parametrize("tamper", TAMPERS, ids=lambda f: f.__name__)
def test_tampering_behind_the_apps_back_is_found(
    register: Register, tamper: Callable[[Connection, dict[int, int]], list[str]]
) -> None:
    batch = build(register)
    assert verify_audit(register).ok
    with register.write() as conn:
        expected = tamper(conn, batch)

    result = verify_audit(register)

    assert not result.ok, f"{tamper.__name__} went unnoticed"
    first = result.problems[0]
    for words in expected:
        assert words in first, f"first problem {first!r} does not name {words!r}"


def test_a_record_of_an_unregistered_subject_is_found(register: Register) -> None:
    build(register)
    with register.write() as conn:
        conn.execute(
            text(
                "UPDATE records SET subject_id = 'nobody' WHERE id = (SELECT MIN(id) FROM records)"
            )
        )
    result = verify_audit(register)
    assert not result.ok
    assert any("records rows name a subject_id that does not exist" in p for p in result.problems)
