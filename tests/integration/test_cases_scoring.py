"""Objections, corrections, revocations and repairs as they change standings (DESIGN 5.1).

Every expectation is checked twice, on both stores: by the pure scorer over the stored facts
(`subject_standing`) and by the set-based SQL (`rescore_all`, then the standings table).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from credo.clock import FixedDateClock
from credo.domain.errors import ConflictError, CredoError, ValidationError
from credo.domain.policy_load import load_policy
from credo.services.cases import (
    decide_case,
    object_to_record,
    queue,
    request_repair,
    request_review,
)
from credo.services.filing import subject_standing
from credo.services.register import Register
from credo.store.rescore import rescore_all
from credo.store.tables import records
from tests.conftest import TODAY
from tests.factories import file_rows, record, seed_register, wipe

# Objections are due after ten days; court.minor and tax.arrears are not suspended while
# disputed, only once the objection is overdue.
CASES_POLICY = """
[policy]
id = "cases"
version = "1"
base_score = 1000
score_min = 0
score_max = 2000
objection_period = "P10D"
publication_delay = "P15D"

[[grades]]
name = "A"
min = 1050
[[grades]]
name = "B"
min = 1000
[[grades]]
name = "C"
min = 900
[[grades]]
name = "D"
min = 0

[[authorities]]
id = "court"
name = "Court"
may_file = ["judicial"]
[[authorities]]
id = "tax"
name = "Tax Bureau"
may_file = ["tax"]
[[authorities]]
id = "personnel"
name = "Personnel Bureau"
may_file = ["employment"]

[[categories]]
id = "court.defiance"
name = "Defied a court order"
context = "judicial"
points = -100
valid_for = "P2Y"
cap = -200
repairable = true

[[categories]]
id = "court.minor"
name = "Minor procedural breach"
context = "judicial"
points = -30
valid_for = "P1Y"
repairable = true
suspend_while_disputed = false

[[categories]]
id = "tax.arrears"
name = "Tax arrears"
context = "tax"
points = -60
valid_for = "P1Y"
repairable = true
suspend_while_disputed = false

[[categories]]
id = "employment.commendation"
name = "Commendation"
context = "employment"
points = 40
valid_for = "P6M"
cap = 80

[[lists]]
id = "dishonest"
kind = "black"
name = "Dishonest persons"
when = [ { any_of = ["court.defiance"] }, { grade_in = ["D"] } ]

[[lists]]
id = "exemplary"
kind = "red"
name = "Exemplary public servants"
when = [ { grade_in = ["A"] } ]
excludes = ["dishonest"]

[[measures]]
id = "hr.no_promotion"
authority = "personnel"
kind = "sanction"
trigger = { list = "dishonest" }
contexts = ["judicial", "employment"]
text = "Not eligible for promotion while listed"

[[measures]]
id = "tax.strict"
authority = "tax"
kind = "sanction"
trigger = { grade_in = ["C", "D"] }
contexts = ["tax"]
text = "Strict tax supervision"

[[purposes]]
id = "promotion-review"
authorities = ["personnel"]
sees = ["grade", "lists", "measures"]
legal_basis = "Civil Servant Law art. 45"
"""

AUTHORITY = {
    "court.defiance": "court",
    "court.minor": "court",
    "tax.arrears": "tax",
    "employment.commendation": "personnel",
}
Row = tuple[int, str, str, str]  # score, grade, lists, measures


def d(value: str) -> date:
    return date.fromisoformat(value)


def both_ways(register: Register, day: date) -> tuple[dict[str, Row], dict[str, Row]]:
    """(SQL standings, pure standings) of every subject as of `day`: score, grade, lists,
    measures and the first day a counted record stops counting (ISO text or None)."""
    with register.write() as conn:
        version_id, policy = register.active_policy(conn)
        rescore_all(conn, policy, version_id, day, register.clock.now())
        sql = {
            r.subject_id: (r.score, r.grade, r.lists, r.measures, _iso(r.next_end))
            for r in conn.execute(
                text("SELECT subject_id, score, grade, lists, measures, next_end FROM standings")
            )
        }
        pure = {}
        for sid in sql:
            s = subject_standing(conn, policy, sid, day)
            pure[sid] = (s.score, s.grade, ",".join(s.lists), ",".join(s.measures))
            pure[sid] += (_iso(s.next_end),)
    return sql, pure


def _iso(day: date | str | None) -> str | None:
    """A stored or computed day as ISO text (SQLite stores text, PostgreSQL a date)."""
    return None if day is None else str(day)


def scores(register: Register, subject_id: str, days: list[str]) -> dict[str, int]:
    """The subject's score on each day, after checking SQL == pure for everyone that day."""
    found = {}
    for day in days:
        sql, pure = both_ways(register, d(day))
        assert sql == pure, f"SQL and pure scorer disagree as of {day}"
        found[day] = pure[subject_id][0]
    return found


def lists_on(register: Register, subject_id: str, day: str) -> str:
    sql, pure = both_ways(register, d(day))
    assert sql == pure
    return pure[subject_id][2]


def record_id(register: Register, reference: str, version: int = 1) -> int:
    with register.read() as conn:
        return int(
            conn.execute(
                select(records.c.id).where(
                    records.c.reference == reference, records.c.version == version
                )
            ).scalar_one()
        )


def file(register: Register, *items: tuple[str, str, str, str]) -> None:
    """File (reference, subject, category, decided_on) records through their authorities."""
    for ref, sid, category, decided in items:
        report = file_rows(register, AUTHORITY[category], [record(ref, sid, category, decided)])
        assert report.stored == 1, report.first_rejects


@pytest.fixture
def cases_register(register: Register) -> Register:
    seed_register(register, subjects=4, policy=CASES_POLICY)
    return register


# ----------------------------------------------------------------------------- objections


def test_objection_on_a_suspending_category_suspends_from_filing_to_decision(
    cases_register: Register, clock: FixedDateClock
) -> None:
    reg = cases_register
    file(reg, ("C-1", "s-001", "court.defiance", "2026-01-10"))
    file(reg, ("C-2", "s-002", "court.defiance", "2026-01-10"))  # not disputed
    clock.day = d("2026-03-20")
    case = object_to_record(reg, "s-001", record_id(reg, "C-1"), "It was not me.")
    while_open = ["2026-03-19", "2026-03-20", "2026-03-30", "2026-06-01"]
    assert scores(reg, "s-001", while_open) == {
        "2026-03-19": 900,
        "2026-03-20": 1000,
        "2026-03-30": 1000,
        "2026-06-01": 1000,
    }
    assert lists_on(reg, "s-001", "2026-03-19") == "dishonest"
    assert lists_on(reg, "s-001", "2026-03-20") == ""
    assert scores(reg, "s-002", ["2026-03-20"]) == {"2026-03-20": 900}
    clock.day = d("2026-04-10")
    decided = decide_case(reg, case, reviewer="rev", outcome="reject", reasons="Proven.")
    assert decided["status"] == "rejected" and decided["decided_on"] == "2026-04-10"
    assert scores(reg, "s-001", ["2026-03-19", "2026-03-20", "2026-04-09", "2026-04-10"]) == {
        "2026-03-19": 900,
        "2026-03-20": 1000,
        "2026-04-09": 1000,
        "2026-04-10": 900,
    }
    assert lists_on(reg, "s-001", "2026-04-10") == "dishonest"
    assert scores(reg, "s-001", ["2028-01-09", "2028-01-10"]) == {
        "2028-01-09": 900,
        "2028-01-10": 1000,
    }


def test_objection_on_a_non_suspending_category_suspends_only_once_overdue(
    cases_register: Register, clock: FixedDateClock
) -> None:
    reg = cases_register
    file(reg, ("M-1", "s-001", "court.minor", "2026-03-01"))
    clock.day = d("2026-03-15")
    case = object_to_record(reg, "s-001", record_id(reg, "M-1"), "Wrong person.")
    assert scores(reg, "s-001", ["2026-03-15", "2026-03-24", "2026-03-25", "2026-12-01"]) == {
        "2026-03-15": 970,
        "2026-03-24": 970,
        "2026-03-25": 1000,  # filed + P10D: overdue
        "2026-12-01": 1000,
    }
    clock.day = d("2026-04-05")
    decide_case(reg, case, reviewer="rev", outcome="reject", reasons="Proven.")
    assert scores(
        reg, "s-001", ["2026-03-24", "2026-03-25", "2026-04-04", "2026-04-05", "2027-03-01"]
    ) == {
        "2026-03-24": 970,
        "2026-03-25": 1000,
        "2026-04-04": 1000,
        "2026-04-05": 970,
        "2027-03-01": 1000,  # expired
    }


def test_objection_decided_before_it_is_due_never_suspends_a_non_suspending_record(
    cases_register: Register, clock: FixedDateClock
) -> None:
    reg = cases_register
    file(reg, ("T-1", "s-001", "tax.arrears", "2026-03-01"))
    case = object_to_record(reg, "s-001", record_id(reg, "T-1"), "Paid already.")
    clock.day = d("2026-03-20")
    decide_case(reg, case, reviewer="rev", outcome="reject", reasons="Not paid.")
    days = ["2026-03-15", "2026-03-19", "2026-03-20", "2026-03-25", "2026-04-01"]
    assert set(scores(reg, "s-001", days).values()) == {940}


# ----------------------------------------------------------------------------- decisions


def test_a_correction_counts_the_old_version_before_the_decision_and_the_new_from_it(
    cases_register: Register, clock: FixedDateClock
) -> None:
    reg = cases_register
    file(reg, ("C-1", "s-001", "court.defiance", "2026-01-10"))
    old = record_id(reg, "C-1")
    case = object_to_record(reg, "s-001", old, "It was a minor breach.")
    clock.day = d("2026-04-01")
    decided = decide_case(
        reg,
        case,
        reviewer="rev",
        outcome="correct",
        reasons="A minor breach.",
        changes={"category": "court.minor"},
    )
    assert decided["status"] == "corrected"
    new = record_id(reg, "C-1", version=2)
    assert decided["new_record_id"] == new
    with reg.read() as conn:
        versions = {
            r.id: r for r in conn.execute(select(records).where(records.c.reference == "C-1")).all()
        }
    assert versions[old].counts_until == d("2026-04-01")
    assert versions[new].counts_from == d("2026-04-01")
    assert versions[new].category == "court.minor"
    days = ["2026-02-01", "2026-03-14", "2026-03-15", "2026-03-31", "2026-04-01", "2027-01-10"]
    assert scores(reg, "s-001", days) == {
        "2026-02-01": 900,  # the old version; the new one does not reach back
        "2026-03-14": 900,
        "2026-03-15": 1000,  # disputed
        "2026-03-31": 1000,
        "2026-04-01": 970,  # the new version, from the decision day
        "2027-01-10": 1000,  # the new version's own validity (P1Y) ended
    }
    assert lists_on(reg, "s-001", "2026-02-01") == "dishonest"
    assert lists_on(reg, "s-001", "2026-04-01") == ""


def test_a_revoked_record_never_counted(cases_register: Register, clock: FixedDateClock) -> None:
    reg = cases_register
    file(
        reg,
        ("C-1", "s-001", "court.defiance", "2026-01-10"),
        ("C-2", "s-002", "court.defiance", "2026-01-10"),
    )
    case = object_to_record(reg, "s-001", record_id(reg, "C-1"), "Annulled on appeal.")
    clock.day = d("2026-04-01")
    decide_case(reg, case, reviewer="rev", outcome="revoke", reasons="Annulled.")
    days = ["2026-01-10", "2026-02-01", "2026-03-14", "2026-04-01", "2027-01-01"]
    assert set(scores(reg, "s-001", days).values()) == {1000}
    assert set(scores(reg, "s-002", days).values()) == {900}
    with pytest.raises(ConflictError):
        object_to_record(reg, "s-001", record_id(reg, "C-1"), "Again.")


def test_an_approved_repair_ends_the_effect_on_the_repair_date(
    cases_register: Register, clock: FixedDateClock
) -> None:
    reg = cases_register
    file(
        reg,
        ("C-1", "s-001", "court.defiance", "2026-01-10"),
        ("C-2", "s-002", "court.defiance", "2026-01-10"),
        ("C-3", "s-003", "court.defiance", "2026-01-10"),
    )
    future = request_repair(reg, "s-001", record_id(reg, "C-1"), "Complied with the order.")
    past = request_repair(reg, "s-002", record_id(reg, "C-2"), "Complied in January.")
    refused = request_repair(reg, "s-003", record_id(reg, "C-3"), "Will comply.")
    assert scores(reg, "s-001", ["2026-03-15"]) == {"2026-03-15": 900}  # a request is no dispute
    clock.day = d("2026-03-20")
    approved = decide_case(
        reg, future, reviewer="rev", outcome="approve", reasons="OK.", repair_on=d("2026-06-01")
    )
    assert approved["repair_on"] == "2026-06-01"
    decide_case(
        reg, past, reviewer="rev", outcome="approve", reasons="OK.", repair_on=d("2026-02-01")
    )
    decide_case(reg, refused, reviewer="rev", outcome="refuse", reasons="Not yet.")
    assert scores(reg, "s-001", ["2026-03-20", "2026-05-31", "2026-06-01", "2027-01-01"]) == {
        "2026-03-20": 900,
        "2026-05-31": 900,
        "2026-06-01": 1000,
        "2027-01-01": 1000,
    }
    assert scores(reg, "s-002", ["2026-01-31", "2026-02-01", "2026-03-20"]) == {
        "2026-01-31": 900,
        "2026-02-01": 1000,
        "2026-03-20": 1000,
    }
    assert scores(reg, "s-003", ["2026-07-01", "2028-01-09"]) == {
        "2026-07-01": 900,
        "2028-01-09": 900,
    }


def test_a_repair_date_before_the_record_is_refused(cases_register: Register) -> None:
    reg = cases_register
    file(reg, ("C-1", "s-001", "court.defiance", "2026-01-10"))
    case = request_repair(reg, "s-001", record_id(reg, "C-1"), "Complied.")
    with pytest.raises(ValidationError):
        decide_case(
            reg, case, reviewer="rev", outcome="approve", reasons="x", repair_on=d("2026-01-09")
        )
    with pytest.raises(ValidationError):
        decide_case(reg, case, reviewer="rev", outcome="reject", reasons="not for repairs")


def test_the_queue_puts_the_most_urgent_first_and_flags_overdue_cases(
    cases_register: Register, clock: FixedDateClock
) -> None:
    reg = cases_register
    file(
        reg,
        ("C-1", "s-001", "court.defiance", "2026-01-10"),
        ("M-1", "s-002", "court.minor", "2026-03-01"),
    )
    clock.day = d("2026-03-16")
    later = object_to_record(reg, "s-001", record_id(reg, "C-1"), "No.")
    clock.day = d("2026-03-15")
    first = object_to_record(reg, "s-002", record_id(reg, "M-1"), "No.")
    review = request_review(reg, "s-003", "grade", "Please look.")
    clock.day = d("2026-03-25")
    open_cases = queue(reg)
    assert [c["id"] for c in open_cases] == [first, review, later]
    assert [c["overdue"] for c in open_cases] == [True, True, False]
    assert open_cases[0]["due_on"] == "2026-03-25"
    decide_case(reg, first, reviewer="rev", outcome="reject", reasons="Proven.")
    assert [c["id"] for c in queue(reg)] == [review, later]
    assert [c["id"] for c in queue(reg, status="rejected")] == [first]


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
CATEGORY_SWAP = {"court.defiance": "court.minor", "court.minor": "court.defiance"}
OUTCOMES = {
    "objection": ["reject", "correct", "revoke"],
    "repair": ["approve", "refuse"],
    "review": ["confirm", "correct", "revoke"],
}

record_st = st.tuples(
    st.sampled_from(sorted(AUTHORITY)),
    st.integers(1, 4),  # subject
    st.integers(0, 500),  # days before TODAY
)
case_st = st.tuples(
    st.integers(0, 150),  # filed this many days after TODAY
    st.sampled_from(["objection", "objection", "repair", "repair", "review"]),
    st.integers(0, 1000),  # which record (or subject, for a review)
    st.one_of(st.none(), st.integers(0, 60)),  # decided this many days later; None: open
    st.integers(0, 1000),  # which outcome, repair date, correction
)
Case = tuple[int, str, int, int | None, int]


def _wipe(register: Register) -> None:
    wipe(register, TABLES)


def _current(register: Register, reference: str) -> Any:
    with register.read() as conn:
        return conn.execute(
            select(records)
            .where(records.c.reference == reference)
            .order_by(records.c.version.desc())
        ).first()


def _correction(row: Any, m: int) -> dict[str, str]:
    if m % 2 and row.category in CATEGORY_SWAP:
        return {"category": CATEGORY_SWAP[row.category]}
    return {"decided_on": (row.decided_on - timedelta(days=m % 90)).isoformat()}


def _open(register: Register, refs: list[str], case: Case) -> int:
    _, kind, n, _, _ = case
    if kind == "review":
        return request_review(register, f"s-{n % 4 + 1:03d}", "grade", "grounds")
    row = _current(register, refs[n % len(refs)])
    if kind == "objection":
        return object_to_record(register, row.subject_id, row.id, "grounds")
    return request_repair(register, row.subject_id, row.id, "evidence")


def _decide(register: Register, case_id: int, case: Case) -> str:
    kind, m = case[1], case[4]
    outcome = OUTCOMES[kind][m % len(OUTCOMES[kind])]
    extra: dict[str, Any] = {}
    with register.read() as conn:
        if kind != "review":
            target = _current(register, _reference(conn, case_id))
        else:
            subject_id = conn.execute(
                text("SELECT subject_id FROM cases WHERE id = :c"), {"c": case_id}
            ).scalar_one()
            own = conn.execute(
                select(records)
                .where(records.c.subject_id == subject_id, records.c.counts_until.is_(None))
                .order_by(records.c.id)
            ).all()
            target = own[m % len(own)] if own else None
            if target is None:
                outcome = "confirm"
            elif outcome != "confirm":
                extra["record_id"] = target.id
    if outcome == "correct":
        extra["changes"] = _correction(target, m)
    if outcome == "approve":
        extra["repair_on"] = target.decided_on + timedelta(days=m % 500)
    decide_case(register, case_id, reviewer="rev", outcome=outcome, reasons="r", **extra)
    return outcome


def _reference(conn: Any, case_id: int) -> str:
    return str(
        conn.execute(
            text(
                "SELECT r.reference FROM cases c JOIN records r ON r.id = c.record_id "
                "WHERE c.id = :c"
            ),
            {"c": case_id},
        ).scalar_one()
    )


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    filed=st.lists(record_st, min_size=1, max_size=10),
    opened=st.lists(case_st, max_size=10),
    offsets=st.lists(st.integers(-500, 900), min_size=1, max_size=3),
)
def test_sql_equals_pure_scorer_with_random_cases(
    register: Register,
    clock: FixedDateClock,
    filed: list[tuple[str, int, int]],
    opened: list[Case],
    offsets: list[int],
) -> None:
    _wipe(register)
    clock.day = TODAY
    seed_register(register, subjects=4, policy=CASES_POLICY)
    refs = []
    for n, (category, subject, days_before) in enumerate(filed):
        ref = f"R{n}"
        refs.append(ref)
        decided = (TODAY - timedelta(days=days_before)).isoformat()
        file(register, (ref, f"s-{subject:03d}", category, decided))
    events = [(case[0], 0, n) for n, case in enumerate(opened)]
    events += [(case[0] + case[3], 1, n) for n, case in enumerate(opened) if case[3] is not None]
    case_ids: dict[int, int] = {}
    for day, decision, n in sorted(events):
        clock.day = TODAY + timedelta(days=day)
        try:
            if not decision:
                case_ids[n] = _open(register, refs, opened[n])
            elif n in case_ids:
                _decide(register, case_ids[n], opened[n])
        except CredoError:
            pass  # e.g. a repair of an expired record, a record already revoked
    days = {TODAY + timedelta(days=o) for o in offsets}
    days |= {TODAY + timedelta(days=e[0] + shift) for e in events for shift in (-1, 0, 10)}
    mismatches = []
    for day in sorted(days):
        sql, pure = both_ways(register, day)
        assert len(sql) == 4
        mismatches += [(day, sid, sql[sid], pure[sid]) for sid in sql if sql[sid] != pure[sid]]
    assert mismatches == []


def test_cases_policy_loads() -> None:
    policy = load_policy(CASES_POLICY)
    assert not policy.category_by_id["court.minor"].suspend_while_disputed
    assert policy.category_by_id["court.defiance"].suspend_while_disputed
