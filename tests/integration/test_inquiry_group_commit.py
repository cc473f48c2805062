"""Standing lookups share their commits (credo.services.standing.InquiryLog) and lose nothing.

Many threads ask at once, as uvicorn's thread pool does: every answer has exactly one inquiry
row and one `inquiry.made` audit entry, the chain still verifies, and a failed commit fails
the requests of its batch instead of answering them unlogged.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from credo.services.audit_verify import verify_audit
from credo.services.keys import add_key
from credo.services.register import Register
from credo.services.standing import InquiryLog, inquiry_log, query_standing
from credo.store.tables import audit_entries, inquiries
from tests.factories import file_rows, record, seed_register

THREADS = 12
LOOKUPS = 120


def _count(register: Register, table: object, *where: object) -> int:
    with register.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def test_concurrent_lookups_log_one_inquiry_each_and_keep_the_chain(register: Register) -> None:
    seed_register(register, subjects=3)
    file_rows(
        register, "city-court", [record("R-1", "s-001", "court.order_defiance", "2026-01-10")]
    )
    key = add_key(register, "city-personnel", actor="test")

    def look(n: int) -> str:
        shown = query_standing(
            register,
            api_key=key,
            subject_id=f"s-00{n % 3 + 1}",
            purpose_id="promotion-review",
        )
        return str(shown["subject_id"])

    with ThreadPoolExecutor(THREADS) as pool:
        answered = list(pool.map(look, range(LOOKUPS)))

    assert len(answered) == LOOKUPS
    assert _count(register, inquiries) == LOOKUPS
    assert _count(register, audit_entries, audit_entries.c.action == "inquiry.made") == LOOKUPS
    for n in range(1, 4):
        sid = f"s-00{n}"
        assert _count(register, inquiries, inquiries.c.subject_id == sid) == answered.count(sid)
    verification = verify_audit(register)
    assert verification.ok, verification.problems


def test_a_failed_commit_fails_its_requests_and_logs_nothing(
    register: Register, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_register(register, subjects=1)
    key = add_key(register, "city-personnel", actor="test")

    def broken(*_args: object) -> None:
        raise RuntimeError("the disk is full")

    monkeypatch.setattr("credo.services.standing.write_inquiries", broken)
    with pytest.raises(RuntimeError, match="the disk is full"):
        query_standing(register, api_key=key, subject_id="s-001", purpose_id="promotion-review")
    assert _count(register, inquiries) == 0
    monkeypatch.undo()
    query_standing(register, api_key=key, subject_id="s-001", purpose_id="promotion-review")
    assert _count(register, inquiries) == 1


def test_each_register_database_has_its_own_log(register: Register) -> None:
    log = inquiry_log(register)
    assert isinstance(log, InquiryLog)
    assert inquiry_log(register) is log
