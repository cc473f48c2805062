"""Standing lookups share their commits (credo.services.inquiries) and lose nothing.

Many threads ask at once, as uvicorn's thread pool does, or many requests on one event loop
(the API's PostgreSQL hot path): every answer has exactly one inquiry row, covered by the
`inquiries.logged` audit entry of its commit, the chain and the digests still verify, and a
failed commit fails the requests of its batch instead of answering them unlogged.
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from credo.services.audit_verify import verify_audit
from credo.services.inquiries import Inquiry, InquiryLog, async_inquiry_log, inquiry_log
from credo.services.keys import add_key
from credo.services.register import Register
from credo.services.standing import query_standing
from credo.store.hotpath import close_async
from credo.store.tables import audit_entries, inquiries
from tests.conftest import TODAY
from tests.factories import file_rows, record, seed_register, standings_on_one_loop

THREADS = 12
LOOKUPS = 120


def _count(register: Register, table: object, *where: object) -> int:
    with register.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def _logged(register: Register) -> int:
    """Inquiries the `inquiries.logged` entries say they cover, each row covered once."""
    with register.read() as conn:
        payloads = conn.execute(
            select(audit_entries.c.payload).where(audit_entries.c.action == "inquiries.logged")
        ).scalars()
        said = sum(json.loads(p)["inquiries"] for p in payloads)
    assert _count(register, inquiries, inquiries.c.audit_seq.is_not(None)) == said
    return said


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
    assert _logged(register) == LOOKUPS
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

    monkeypatch.setattr("credo.services.inquiries.write_inquiries", broken)
    with pytest.raises(RuntimeError, match="the disk is full"):
        query_standing(register, api_key=key, subject_id="s-001", purpose_id="promotion-review")
    assert _count(register, inquiries) == 0
    monkeypatch.undo()
    query_standing(register, api_key=key, subject_id="s-001", purpose_id="promotion-review")
    assert _count(register, inquiries) == 1


@pytest.mark.parametrize("max_batch", [1000, 6])
def test_a_requests_inquiries_commit_together_beside_other_requests(
    register: Register, max_batch: int
) -> None:
    """`log_all` (a batch check's inquiries): each request's rows in one commit, never split,
    however many requests queue at once or however small a commit is kept."""
    seed_register(register, subjects=40)
    log = InquiryLog()
    log.MAX_BATCH = max_batch
    now = register.clock.now()

    def request(n: int) -> None:
        sid = f"s-{n + 1:03d}"
        log.log_all(register, [Inquiry(sid, "city-tax", "tax-check", TODAY, now, "api")] * 4)

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(request, range(40)))
    with register.read() as conn:
        rows = conn.execute(select(inquiries.c.subject_id, inquiries.c.audit_seq)).all()
    assert len(rows) == 160 and _logged(register) == 160
    commits: dict[str, set[int]] = {}
    for sid, seq in rows:
        commits.setdefault(sid, set()).add(seq)
    assert len(commits) == 40 and all(len(seqs) == 1 for seqs in commits.values())
    verification = verify_audit(register)
    assert verification.ok, verification.problems


def test_each_register_database_has_its_own_log(register: Register) -> None:
    log = inquiry_log(register)
    assert isinstance(log, InquiryLog)
    assert inquiry_log(register) is log


def test_concurrent_lookups_on_the_event_loop_log_one_inquiry_each(pg_register: Register) -> None:
    register = pg_register
    seed_register(register, subjects=3)
    file_rows(
        register, "city-court", [record("R-1", "s-001", "court.order_defiance", "2026-01-10")]
    )
    key = add_key(register, "city-personnel", actor="test")
    asked = [f"s-00{n % 3 + 1}" for n in range(LOOKUPS)]

    answers = standings_on_one_loop(register, [(key, sid) for sid in asked])

    assert [a["subject_id"] for a in answers] == asked  # type: ignore[index]
    assert answers[0] == query_standing(  # the same answer as the threaded path
        register, api_key=key, subject_id="s-001", purpose_id="promotion-review"
    )
    assert _count(register, inquiries) == LOOKUPS + 1
    assert _logged(register) == LOOKUPS + 1
    verification = verify_audit(register)
    assert verification.ok, verification.problems


def test_a_failed_commit_on_the_event_loop_fails_its_requests(
    pg_register: Register, monkeypatch: pytest.MonkeyPatch
) -> None:
    register = pg_register
    seed_register(register, subjects=2)
    key = add_key(register, "city-personnel", actor="test")

    async def broken(*_args: object) -> None:
        raise RuntimeError("the disk is full")

    monkeypatch.setattr("credo.services.inquiries.write_inquiries_async", broken)
    answers = standings_on_one_loop(register, [(key, "s-001"), (key, "s-002")] * 5)
    assert all(isinstance(a, RuntimeError) for a in answers), answers
    assert _count(register, inquiries) == 0
    monkeypatch.undo()
    answers = standings_on_one_loop(register, [(key, "s-001")])
    assert answers[0]["subject_id"] == "s-001"  # type: ignore[index]
    assert _count(register, inquiries) == 1


def test_a_request_that_goes_away_still_has_its_inquiry_committed(pg_register: Register) -> None:
    """A client that hangs up cancels its request's task while its inquiry waits for a
    commit: the inquiry is committed with its batch all the same, and the others answered."""
    register = pg_register
    seed_register(register, subjects=2)
    day = TODAY

    async def run() -> tuple[int, int]:
        log = async_inquiry_log(register.engine)
        try:
            now = register.clock.now()
            tasks = [
                asyncio.create_task(
                    log.log(Inquiry(f"s-00{n % 2 + 1}", "city-personnel", "p", day, now, "api"))
                )
                for n in range(40)
            ]
            await asyncio.sleep(0)  # every task queued its inquiry; the first batch is out
            for task in tasks[::2]:
                task.cancel()
            done = await asyncio.gather(*tasks, return_exceptions=True)
            while log._task is not None and not log._task.done():  # the batches still out
                await asyncio.sleep(0.01)
            cancelled = sum(isinstance(d, asyncio.CancelledError) for d in done)
            return cancelled, sum(d is None for d in done)
        finally:
            await close_async(register.engine)

    with ThreadPoolExecutor(1) as thread:
        cancelled, answered = thread.submit(lambda: asyncio.run(run())).result()
    assert (cancelled, answered) == (20, 20)
    assert _count(register, inquiries) == 40
    assert _logged(register) == 40
    verification = verify_audit(register)
    assert verification.ok, verification.problems
