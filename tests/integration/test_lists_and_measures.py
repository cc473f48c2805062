"""List periods, the measures feed and batch checks, on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from datetime import date

import pytest
from sqlalchemy import text

from credo.clock import FixedDateClock
from credo.domain.errors import NotFoundError, PermissionDeniedError, ValidationError
from credo.services.checks import run_checks
from credo.services.filing import file_record
from credo.services.lists import list_members
from credo.services.measures import changes, measures
from credo.services.register import Register
from credo.services.sweep import sweep
from credo.store.rescore import rescore_all
from tests.conftest import TODAY
from tests.factories import WORKED_POLICY, file_rows, record, seed_register

LIST_POLICY = (
    WORKED_POLICY.replace('version = "1"', 'version = "lists"')
    + """
[[purposes]]
id = "enforcement-check"
authorities = ["city-court"]
sees = ["lists", "explanation"]
legal_basis = "Civil Procedure Law art. 262"

[[purposes]]
id = "list-count"
authorities = ["city-court"]
sees = ["lists"]
legal_basis = "Civil Procedure Law art. 262"
"""
)


def d(value: str) -> date:
    return date.fromisoformat(value)


def periods(register: Register, subject_id: str) -> list[tuple[str, str, str | None, str]]:
    with register.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT list_id, entered_on, left_on, grade FROM list_periods "
                "WHERE subject_id = :s ORDER BY id"
            ),
            {"s": subject_id},
        )
        return [(r[0], str(r[1]), None if r[2] is None else str(r[2]), r[3]) for r in rows]


@pytest.fixture
def lists_register(register: Register) -> Register:
    seed_register(register, subjects=4, policy=LIST_POLICY)
    return register


def test_a_list_period_opens_with_its_causes_and_closes_when_the_record_expires(
    lists_register: Register, clock: FixedDateClock
) -> None:
    file_rows(
        lists_register,
        "city-court",
        [record("EX-1", "s-001", "court.order_defiance", "2026-01-10")],
    )
    assert periods(lists_register, "s-001") == [("dishonest", "2026-03-15", None, "C")]
    page = list_members(
        lists_register,
        authority_id="city-court",
        list_id="dishonest",
        purpose_id="enforcement-check",
    )
    assert page.to_json()["members"] == [
        {
            "subject_id": "s-001",
            "since": "2026-03-15",
            "causes": [
                {
                    "record": {
                        "authority": "city-court",
                        "reference": "EX-1",
                        "category": "court.order_defiance",
                    }
                }
            ],
        }
    ]
    clock.day = d("2028-01-10")  # the record ends on this day
    sweep(lists_register)
    assert periods(lists_register, "s-001") == [("dishonest", "2026-03-15", "2028-01-10", "C")]
    before = list_members(
        lists_register,
        authority_id="city-court",
        list_id="dishonest",
        purpose_id="list-count",
        as_of=d("2028-01-09"),
    )
    after = list_members(
        lists_register, authority_id="city-court", list_id="dishonest", purpose_id="list-count"
    )
    assert [m["subject_id"] for m in before.members] == ["s-001"]
    assert "causes" not in before.members[0]  # the purpose does not see explanations
    assert after.members == []


def test_each_member_shown_is_one_inquiry(lists_register: Register) -> None:
    file_rows(
        lists_register,
        "city-court",
        [record(f"EX-{n}", f"s-00{n}", "court.order_defiance", "2026-01-10") for n in (1, 2, 3)],
    )
    first = list_members(
        lists_register,
        authority_id="city-court",
        list_id="dishonest",
        purpose_id="list-count",
        limit=2,
    )
    assert [m["subject_id"] for m in first.members] == ["s-001", "s-002"]
    rest = list_members(
        lists_register,
        authority_id="city-court",
        list_id="dishonest",
        purpose_id="list-count",
        after=first.next_after,
        limit=2,
    )
    assert [m["subject_id"] for m in rest.members] == ["s-003"] and rest.next_after is None
    with lists_register.engine.connect() as conn:
        logged = conn.execute(
            text("SELECT subject_id, purpose FROM inquiries ORDER BY id")
        ).fetchall()
    assert [tuple(r) for r in logged] == [
        ("s-001", "list-count"),
        ("s-002", "list-count"),
        ("s-003", "list-count"),
    ]


def test_list_members_refuses_purposes_lists_and_days_it_may_not_serve(
    lists_register: Register,
) -> None:
    with pytest.raises(PermissionDeniedError, match="tax-check"):  # does not see lists
        list_members(
            lists_register, authority_id="city-tax", list_id="dishonest", purpose_id="tax-check"
        )
    with pytest.raises(PermissionDeniedError, match="promotion-review"):  # not for the court
        list_members(
            lists_register,
            authority_id="city-court",
            list_id="dishonest",
            purpose_id="promotion-review",
        )
    with pytest.raises(NotFoundError, match="nope"):
        list_members(
            lists_register, authority_id="city-court", list_id="nope", purpose_id="list-count"
        )


def test_a_red_list_excludes_members_of_the_black_list_and_history_shows_it(
    lists_register: Register,
) -> None:
    file_rows(
        lists_register,
        "city-civil",
        [record(f"V-{n}", "s-002", "civic.volunteering", "2026-02-01") for n in range(3)],
    )
    assert periods(lists_register, "s-002") == [("exemplary", "2026-03-15", None, "A")]
    file_record(
        lists_register,
        record("EX-9", "s-002", "court.order_defiance", "2026-03-01"),
        authority_id="city-court",
        actor="test",
    )
    # 1060 - 100 = 960 (C), on dishonest by the record, and off exemplary.
    assert periods(lists_register, "s-002") == [
        ("exemplary", "2026-03-15", "2026-03-15", "A"),
        ("dishonest", "2026-03-15", None, "C"),
    ]


def test_members_on_another_day_are_scored_from_the_records(lists_register: Register) -> None:
    file_rows(
        lists_register,
        "city-court",
        [
            record("EX-1", "s-001", "court.order_defiance", "2026-01-10"),
            record("EX-2", "s-002", "court.order_defiance", "2026-03-01"),
        ],
    )

    def on(day: str) -> list[tuple[str, str | None]]:
        page = list_members(
            lists_register,
            authority_id="city-court",
            list_id="dishonest",
            purpose_id="enforcement-check",
            as_of=d(day),
        )
        return [(m["subject_id"], m["since"]) for m in page.members]

    assert on("2026-01-09") == []
    assert on("2026-01-10") == [("s-001", None)]  # before the register first scored it
    assert on("2026-03-15") == [("s-001", "2026-03-15"), ("s-002", "2026-03-15")]
    assert on("2028-01-10") == [("s-002", "2026-03-15")]  # projected: EX-1 has expired
    page = list_members(
        lists_register,
        authority_id="city-court",
        list_id="dishonest",
        purpose_id="enforcement-check",
        as_of=d("2026-02-01"),
    )
    assert page.members[0]["causes"] == [
        {
            "record": {
                "authority": "city-court",
                "reference": "EX-1",
                "category": "court.order_defiance",
            }
        }
    ]


def feed_state(register: Register, authority: str, since: int) -> set[tuple[str, str]]:
    """Replay the change feed from `since` over the full read taken at that cursor."""
    state: set[tuple[str, str]] = set()
    cursor = since
    while True:
        batch = changes(register, authority, since=cursor, limit=3)
        for event in batch["events"]:
            pair = (event["subject_id"], event["measure"])
            if event["change"] == "start":
                state.add(pair)
            else:
                state.discard(pair)
        cursor = batch["cursor"]
        if not batch["more"]:
            return state


def full_read(register: Register, authority: str) -> set[tuple[str, str]]:
    state: set[tuple[str, str]] = set()
    after = None
    while True:
        page = measures(register, authority, after=after, limit=2)
        state |= {(i["subject_id"], i["measure"]) for i in page["items"]}
        after = page["next_after"]
        if after is None:
            return state


def test_the_change_feed_replayed_from_every_cursor_equals_a_fresh_full_read(
    lists_register: Register, clock: FixedDateClock
) -> None:
    rng = random.Random(7)
    snapshots: list[tuple[int, set[tuple[str, str]]]] = []
    for n in range(1, 13):
        page = measures(lists_register, "city-personnel")
        snapshots.append((page["cursor"], full_read(lists_register, "city-personnel")))
        who = f"s-00{rng.randint(1, 4)}"
        if rng.random() < 0.7:
            file_record(
                lists_register,
                record(f"R-{n}", who, "court.order_defiance", str(clock.day)),
                authority_id="city-court",
                actor="test",
            )
        clock.day = date.fromordinal(clock.day.toordinal() + rng.choice([30, 200, 400]))
        sweep(lists_register)
    final = full_read(lists_register, "city-personnel")
    events = changes(lists_register, "city-personnel", limit=10_000)["events"]
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
    assert {e["change"] for e in events} == {"start", "end"}
    for cursor, seen in snapshots:
        replayed = seen.copy()
        for event in changes(lists_register, "city-personnel", since=cursor, limit=10_000)[
            "events"
        ]:
            pair = (event["subject_id"], event["measure"])
            (replayed.add if event["change"] == "start" else replayed.discard)(pair)
        assert replayed == final
    assert feed_state(lists_register, "city-personnel", 0) == final


def test_measures_lists_current_and_past_periods_and_an_authority_sees_only_its_own(
    lists_register: Register, clock: FixedDateClock
) -> None:
    file_rows(
        lists_register,
        "city-court",
        [record("EX-1", "s-001", "court.order_defiance", "2026-01-10")],
    )
    file_rows(lists_register, "city-tax", [record("T-1", "s-003", "tax.arrears", "2026-03-01")])
    current = measures(lists_register, "city-personnel")["items"]
    assert current == [
        {
            "subject_id": "s-001",
            "measure": "hr.no_promotion",
            "started_on": "2026-03-15",
            "ended_on": None,
        }
    ]
    # The tax measure sees tax records only: s-003's arrears (940, C) trigger it, s-001's
    # court record does not.
    assert [i["subject_id"] for i in measures(lists_register, "city-tax")["items"]] == ["s-003"]
    clock.day = d("2028-02-01")
    sweep(lists_register)
    assert measures(lists_register, "city-personnel")["items"] == []
    history = measures(lists_register, "city-personnel", active=False)["items"]
    assert [(i["started_on"], i["ended_on"]) for i in history] == [("2026-03-15", "2028-02-01")]
    with pytest.raises(ValidationError, match="page token"):
        measures(lists_register, "city-personnel", after="not-a-token")


def test_a_full_rescore_after_a_policy_change_keeps_the_history_consistent(
    lists_register: Register,
) -> None:
    file_rows(
        lists_register,
        "city-court",
        [record("EX-1", "s-001", "court.order_defiance", "2026-01-10")],
    )
    with lists_register.write() as conn:
        version_id, policy = lists_register.active_policy(conn)
        rescore_all(conn, policy, version_id, TODAY, lists_register.clock.now())
    # Nothing changed: no second period, no second event.
    assert periods(lists_register, "s-001") == [("dishonest", "2026-03-15", None, "C")]
    assert len(changes(lists_register, "city-personnel")["events"]) == 1


def test_a_batch_check_answers_each_subject_and_logs_one_inquiry_per_answer(
    lists_register: Register,
) -> None:
    file_rows(lists_register, "city-tax", [record("T-1", "s-002", "tax.arrears", "2026-03-01")])
    answers = run_checks(
        lists_register,
        authority_id="city-tax",
        purpose_id="tax-check",
        subject_ids=["s-002", "s-404", "s-001"],
    )
    assert answers == [
        {
            "subject_id": "s-002",
            "as_of": "2026-03-15",
            "policy": "worked@lists",
            "purpose": "tax-check",
            "score": 940,
            "grade": "C",
            "measures": ["tax.strict"],
        },
        {"subject_id": "s-404", "error": "not registered"},
        {
            "subject_id": "s-001",
            "as_of": "2026-03-15",
            "policy": "worked@lists",
            "purpose": "tax-check",
            "score": 1000,
            "grade": "B",
            "measures": [],
        },
    ]
    with lists_register.engine.connect() as conn:
        logged = conn.execute(text("SELECT subject_id FROM inquiries ORDER BY id")).fetchall()
    assert [r[0] for r in logged] == ["s-002", "s-001"]
    with pytest.raises(ValidationError, match="refused") as refused:
        run_checks(
            lists_register,
            authority_id="city-tax",
            purpose_id="tax-check",
            subject_ids=["s-001", "s-001"],
        )
    assert refused.value.problems[0].location == "subject_ids[1]"
    with pytest.raises(PermissionDeniedError, match="enforcement-check"):
        run_checks(
            lists_register,
            authority_id="city-tax",
            purpose_id="enforcement-check",
            subject_ids=["s-001"],
        )
