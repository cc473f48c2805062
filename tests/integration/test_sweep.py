"""The sweep brings stored standings to today, rescoring only the subjects that can have
changed (records that ended, objections that fell due), on both stores."""

from __future__ import annotations

import json
from contextlib import suppress
from datetime import date, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from credo.clock import FixedDateClock
from credo.domain.errors import ConflictError
from credo.services.cases import decide_case, object_to_record, request_repair
from credo.services.filing import subject_standing
from credo.services.notices import notices_of
from credo.services.register import Register
from credo.services.sweep import sweep
from credo.store.tables import audit_entries, notices, records, standings
from tests.conftest import TODAY
from tests.factories import WORKED_POLICY, file_rows, record, seed_register, wipe

# The worked policy, with tax arrears suspended only once an objection is overdue.
LENIENT_TAX = WORKED_POLICY.replace(
    'points = -60\nvalid_for = "P1Y"\n',
    'points = -60\nvalid_for = "P1Y"\nsuspend_while_disputed = false\n',
)
AUTHORITY = {
    "court.order_defiance": "city-court",
    "tax.arrears": "city-tax",
    "civic.volunteering": "city-civil",
    "employment.commendation": "city-personnel",
}


def d(value: str) -> date:
    return date.fromisoformat(value)


def file(register: Register, *items: tuple[str, str, str, str]) -> None:
    """File (reference, subject, category, decided_on) records through their authorities."""
    for ref, sid, category, decided in items:
        report = file_rows(register, AUTHORITY[category], [record(ref, sid, category, decided)])
        assert report.stored == 1, report.first_rejects


def stored(register: Register) -> dict[str, Any]:
    with register.read() as conn:
        return {r.subject_id: r for r in conn.execute(select(standings)).all()}


def disagreements(register: Register, day: date) -> list[tuple[str, Any, Any]]:
    """Subjects whose stored standing differs from the pure scorer as of `day`, or whose
    `next_end` (where the sweep looks for ends) is not the first end of a counted record."""
    rows = stored(register)
    found = []
    with register.read() as conn:
        _, policy = register.active_policy(conn)
        for sid, row in sorted(rows.items()):
            pure = subject_standing(conn, policy, sid, day)
            want = (pure.score, pure.grade, ",".join(pure.lists), ",".join(pure.measures))
            want += (pure.next_end,)
            got = (row.score, row.grade, row.lists, row.measures, row.next_end)
            if got != want:
                found.append((sid, got, want))
    return found


def changed_notices(register: Register) -> list[Any]:
    with register.read() as conn:
        return list(
            conn.execute(
                select(notices).where(notices.c.kind == "standing.changed").order_by(notices.c.id)
            ).all()
        )


def record_id(register: Register, reference: str) -> int:
    with register.read() as conn:
        return int(
            conn.execute(select(records.c.id).where(records.c.reference == reference)).scalar_one()
        )


def seed_expiring(register: Register) -> None:
    """Six people; on 2026-04-05 the records of s-001, s-002 and s-003 have ended."""
    seed_register(register, subjects=6)
    file(
        register,
        ("C-1", "s-001", "court.order_defiance", "2024-04-01"),  # ends 2026-04-01
        ("T-1", "s-002", "tax.arrears", "2025-03-20"),  # ends 2026-03-20
        ("E-1", "s-003", "employment.commendation", "2026-03-01"),  # ends 2026-04-01
        ("C-2", "s-004", "court.order_defiance", "2025-06-01"),  # ends 2027-06-01
        ("V-1", "s-005", "civic.volunteering", "2025-12-01"),  # ends 2026-12-01
    )


def test_a_sweep_the_same_day_as_the_last_rescore_does_nothing(register: Register) -> None:
    seed_expiring(register)
    assert disagreements(register, TODAY) == []
    result = sweep(register)
    assert (result.as_of, result.rescored) == (TODAY, 0)


def test_sweep_rescores_only_the_subjects_whose_records_ended(
    register: Register, clock: FixedDateClock
) -> None:
    seed_expiring(register)
    before = stored(register)
    assert before["s-001"].lists == "dishonest"
    assert before["s-002"].measures == "tax.strict"
    clock.day = d("2026-04-05")
    result = sweep(register)
    assert (result.as_of, result.rescored) == (d("2026-04-05"), 3)
    after = stored(register)
    assert {sid for sid, row in after.items() if row.as_of == d("2026-04-05")} == {
        "s-001",
        "s-002",
        "s-003",
    }
    assert len(after) == 6
    assert disagreements(register, d("2026-04-05")) == []
    assert (after["s-001"].score, after["s-001"].lists, after["s-001"].measures) == (1000, "", "")
    with register.read() as conn:
        swept = conn.execute(
            select(audit_entries).where(audit_entries.c.action == "register.swept")
        ).all()
    assert [json.loads(e.payload)["rescored"] for e in swept] == [3]


def test_sweep_notifies_the_subjects_who_left_a_list_or_a_measure(
    register: Register, clock: FixedDateClock
) -> None:
    seed_expiring(register)
    old = {n.id for n in changed_notices(register)}
    clock.day = d("2026-04-05")
    sweep(register)
    new = [n for n in changed_notices(register) if n.id not in old]
    assert sorted((n.subject_id, n.before, n.after) for n in new) == [
        ("s-001", "dishonest|hr.no_promotion", "|"),
        ("s-002", "|tax.strict", "|"),
    ]
    assert {n.status for n in new} == {"pending"}
    with register.read() as conn:
        _, policy = register.active_policy(conn)
        shown = notices_of(conn, "s-001", policy)
    text_ = shown[0]["text"]
    assert shown[0]["kind"] == "standing.changed"
    assert "You left the list Dishonest persons subject to enforcement (dishonest)." in text_
    assert "A measure no longer applies to you: Not eligible for promotion" in text_
    # The same day again: nothing to do, nothing said twice.
    assert sweep(register).rescored == 0
    assert len(changed_notices(register)) == len(old) + 2


def test_an_objection_that_falls_due_between_sweeps_is_picked_up(
    register: Register, clock: FixedDateClock
) -> None:
    seed_register(register, subjects=6, policy=LENIENT_TAX)
    file(
        register,
        ("T-1", "s-002", "tax.arrears", "2026-03-01"),
        ("C-1", "s-001", "court.order_defiance", "2026-01-10"),
    )
    case = object_to_record(register, "s-002", record_id(register, "T-1"), "Paid already.")
    assert stored(register)["s-002"].score == 940  # not suspended while only disputed
    old = {n.id for n in changed_notices(register)}
    clock.day = d("2026-04-10")  # due on 2026-04-14
    assert sweep(register).rescored == 0
    assert stored(register)["s-002"].score == 940
    clock.day = d("2026-04-20")
    result = sweep(register)
    assert result.rescored == 1
    row = stored(register)["s-002"]
    assert (row.score, row.grade, row.measures, row.as_of) == (1000, "B", "", d("2026-04-20"))
    assert disagreements(register, d("2026-04-20")) == []
    new = [n for n in changed_notices(register) if n.id not in old]
    assert [(n.subject_id, n.before, n.after) for n in new] == [("s-002", "|tax.strict", "|")]
    assert sweep(register).rescored == 0
    # Deciding it brings the record back at once, without waiting for a sweep.
    decide_case(register, case, reviewer="rev", outcome="reject", reasons="Not paid.")
    assert stored(register)["s-002"].score == 940
    assert disagreements(register, d("2026-04-20")) == []


def test_an_approved_repair_taking_effect_later_is_picked_up_by_the_sweep(
    register: Register, clock: FixedDateClock
) -> None:
    seed_register(register, subjects=6)
    file(register, ("C-1", "s-001", "court.order_defiance", "2026-01-10"))
    case = request_repair(register, "s-001", record_id(register, "C-1"), "Complied.")
    decide_case(
        register, case, reviewer="rev", outcome="approve", reasons="OK.", repair_on=d("2026-05-01")
    )
    assert stored(register)["s-001"].lists == "dishonest"
    clock.day = d("2026-04-30")
    assert sweep(register).rescored == 0
    clock.day = d("2026-05-01")
    assert sweep(register).rescored == 1
    assert stored(register)["s-001"].lists == ""
    assert disagreements(register, d("2026-05-01")) == []


# ----------------------------------------------------------------------------- property

TABLES = (
    "standings",
    "notices",
    "cases",
    "attachments",
    "records",
    "inquiries",
    "users",
    "subjects",
    "batches",
    "audit_entries",
    "policy_versions",
    "register_state",
)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    filed=st.lists(
        st.tuples(st.sampled_from(sorted(AUTHORITY)), st.integers(1, 8), st.integers(0, 900)),
        max_size=16,
    ),
    objected=st.lists(st.integers(0, 100), max_size=4),
    steps=st.lists(
        st.tuples(
            st.integers(0, 200),  # days forward
            st.none() | st.tuples(st.sampled_from(sorted(AUTHORITY)), st.integers(1, 8)),
        ),
        min_size=1,
        max_size=6,
    ),
)
def test_sweeps_keep_every_stored_standing_equal_to_the_pure_scorer(
    register: Register,
    clock: FixedDateClock,
    filed: list[tuple[str, int, int]],
    objected: list[int],
    steps: list[tuple[int, tuple[str, int] | None]],
) -> None:
    wipe(register, TABLES)
    clock.day = TODAY
    seed_register(register, subjects=8, policy=LENIENT_TAX)
    for n, (category, subject, days_before) in enumerate(filed):
        decided = (TODAY - timedelta(days=days_before)).isoformat()
        file(register, (f"R{n}", f"s-{subject:03d}", category, decided))
    with register.read() as conn:
        ids = [(r.id, r.subject_id) for r in conn.execute(select(records).order_by(records.c.id))]
    for pick in sorted(set(objected)):
        if ids:
            rid, sid = ids[pick % len(ids)]
            with suppress(ConflictError):  # a second objection on the same record
                object_to_record(register, sid, rid, "grounds")
    assert disagreements(register, TODAY) == []
    for n, (forward, new) in enumerate(steps):
        clock.day += timedelta(days=forward)
        if new is not None:
            category, subject = new
            file(register, (f"N{n}", f"s-{subject:03d}", category, clock.day.isoformat()))
        result = sweep(register)
        assert result.as_of == clock.day
        assert 0 <= result.rescored <= 8
        assert disagreements(register, clock.day) == [], clock.day
        assert sweep(register).rescored == 0
