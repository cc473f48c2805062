"""The public register follows DESIGN 5.7 on every boundary day (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import text

from credo.clock import FixedDateClock
from credo.domain.errors import NotFoundError, ValidationError
from credo.services.cases import decide_case, object_to_record, request_repair
from credo.services.policies import activate_policy
from credo.services.public import public_list, search
from credo.services.register import Register
from credo.services.subjects import import_subjects
from credo.services.sweep import sweep
from tests.factories import WORKED_POLICY, file_rows, record, rows, seed_register, subject

# Tax evasion is published for one year of its three; court defiance for its whole two.
PUBLIC_POLICY = (
    WORKED_POLICY.replace('version = "1"', 'version = "public"')
    + """
[[categories]]
id = "tax.evasion"
name = "Tax evasion"
context = "tax"
points = -150
valid_for = "P3Y"
publish_for = "P1Y"
suspend_while_disputed = false
"""
)


def d(value: str) -> date:
    return date.fromisoformat(value)


@pytest.fixture
def public_register(register: Register, clock: FixedDateClock) -> Register:
    clock.day = d("2026-02-01")
    seed_register(register, subjects=4, policy=PUBLIC_POLICY)
    file_rows(
        register,
        "city-court",
        [
            record("EX-1", "s-001", "court.order_defiance", "2026-01-31"),
            record("EX-2", "s-002", "court.order_defiance", "2026-01-31"),
            record("EX-3", "s-003", "court.order_defiance", "2026-01-31"),
        ],
    )
    file_rows(
        register,
        "city-tax",
        [
            record("TE-1", "s-004", "tax.evasion", "2026-01-31"),
            record("TA-1", "s-004", "tax.arrears", "2026-01-31"),  # never published
        ],
    )
    return register


def shown(register: Register, day: str, q: str = "person") -> list[str]:
    register.clock.day = d(day)  # type: ignore[attr-defined]
    return sorted(e["reference"] for e in search(register, q)["entries"])


def record_id(register: Register, reference: str) -> int:
    with register.engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT id FROM records WHERE reference = :r AND version = 1"),
                {"r": reference},
            ).scalar_one()
        )


def test_nothing_is_published_before_the_publication_delay(public_register: Register) -> None:
    assert shown(public_register, "2026-02-14") == []
    assert shown(public_register, "2026-02-15") == ["EX-1", "EX-2", "EX-3", "TE-1"]


def test_publication_ends_with_publish_for_or_with_the_record(public_register: Register) -> None:
    assert "TE-1" in shown(public_register, "2027-01-30")
    assert "TE-1" not in shown(public_register, "2027-01-31")  # publish_for P1Y over
    assert "EX-1" in shown(public_register, "2028-01-30")
    assert shown(public_register, "2028-01-31") == []  # expired with its validity


def test_an_open_objection_hides_the_entry_until_it_is_decided(
    public_register: Register, clock: FixedDateClock
) -> None:
    clock.day = d("2026-03-01")
    case = object_to_record(public_register, "s-002", record_id(public_register, "EX-2"), "Paid.")
    assert "EX-2" not in shown(public_register, "2026-03-01")
    assert "EX-2" not in shown(public_register, "2026-04-20")  # open and overdue
    clock.day = d("2026-04-21")
    decide_case(public_register, case, reviewer="rev", outcome="reject", reasons="Not paid.")
    assert "EX-2" in shown(public_register, "2026-04-21")
    # A non-suspending category is hidden while the objection is open all the same.
    clock.day = d("2026-05-01")
    object_to_record(public_register, "s-004", record_id(public_register, "TE-1"), "Wrong year.")
    assert "TE-1" not in shown(public_register, "2026-05-01")


def test_a_repaired_or_revoked_record_leaves_the_public_register(
    public_register: Register, clock: FixedDateClock
) -> None:
    clock.day = d("2026-03-01")
    repair = request_repair(
        public_register, "s-001", record_id(public_register, "EX-1"), "Complied."
    )
    decide_case(
        public_register,
        repair,
        reviewer="rev",
        outcome="approve",
        reasons="Complied in full.",
        repair_on=d("2026-06-01"),
    )
    assert "EX-1" in shown(public_register, "2026-05-31")
    assert "EX-1" not in shown(public_register, "2026-06-01")
    clock.day = d("2026-03-01")
    case = object_to_record(public_register, "s-003", record_id(public_register, "EX-3"), "No.")
    decide_case(public_register, case, reviewer="rev", outcome="revoke", reasons="Wrong person.")
    assert "EX-3" not in shown(public_register, "2026-03-02")


def test_an_entry_shows_name_authority_category_date_basis_and_reference_only(
    public_register: Register,
) -> None:
    public_register.clock.day = d("2026-03-01")  # type: ignore[attr-defined]
    entries = search(public_register, "EX-1")["entries"]
    assert entries == [
        {
            "name": "Person 1",
            "authority": {"id": "city-court", "name": "City Court"},
            "category": {"id": "court.order_defiance", "name": "Defied an effective court order"},
            "decided_on": "2026-01-31",
            "legal_basis": "Test Law art. 1",
            "reference": "EX-1",
        }
    ]


def test_a_public_list_shows_the_published_records_of_its_current_members(
    public_register: Register, clock: FixedDateClock
) -> None:
    clock.day = d("2026-02-15")
    sweep(public_register)
    page = public_list(public_register, "dishonest")
    assert page["list"] == {
        "id": "dishonest",
        "name": "Dishonest persons subject to enforcement",
        "kind": "black",
    }
    assert [e["reference"] for e in page["entries"]] == ["EX-1", "EX-2", "EX-3"]
    assert public_list(public_register, "exemplary")["entries"] == []  # grade-based only
    clock.day = d("2028-01-31")
    sweep(public_register)
    assert public_list(public_register, "dishonest")["entries"] == []
    with pytest.raises(NotFoundError):
        public_list(public_register, "nope")


def test_search_refuses_too_short_a_query(public_register: Register) -> None:
    with pytest.raises(ValidationError, match="2 to 100"):
        search(public_register, " a ")


def test_entries_sort_by_an_allowed_column_in_either_direction(public_register: Register) -> None:
    public_register.clock.day = d("2026-03-01")  # type: ignore[attr-defined]
    by_reference = search(public_register, "person", sort="reference", direction="desc")
    assert [e["reference"] for e in by_reference["entries"]] == ["TE-1", "EX-3", "EX-2", "EX-1"]
    by_authority = search(public_register, "person", sort="authority")
    assert [e["authority"]["id"] for e in by_authority["entries"]][-1] == "city-tax"
    with pytest.raises(ValidationError) as refused:
        search(public_register, "person", sort="subject_id")
    assert [p.location for p in refused.value.problems] == ["sort"]


def test_a_search_by_name_walks_names_in_batches_and_pages_as_one_query_would(
    register: Register, clock: FixedDateClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sorted by name, the search reads only the span of names a page can reach; with walks
    of one subject at a time (many rounds, bounds inside runs of equal names) every page is
    the page a walk over every match gives, in both directions."""
    clock.day = d("2026-02-01")
    names = ["Wang Wei", "Wang Bo", "Li Wang", "Wang Wei", "Zhao Wang", "Wang Bo", "Chen Li"]
    activate_policy(register, PUBLIC_POLICY, actor="test", comment="seed")
    import_subjects(
        register,
        rows(subject(n, name=names[(n - 1) % len(names)]) for n in range(1, 29)),
        actor="test",
        source="seed",
    )
    items = []
    for n in range(1, 29):
        for k in range(n % 3):  # none, one or two published records each
            items.append(record(f"W-{n}-{k}", f"s-{n:03d}", "court.order_defiance", "2026-01-31"))
        items.append(record(f"A-{n}", f"s-{n:03d}", "tax.arrears", "2026-01-31"))  # unpublished
    file_rows(register, "city-court", [i for i in items if i["reference"].startswith("W")])
    file_rows(register, "city-tax", [i for i in items if i["reference"].startswith("A")])
    clock.day = d("2026-03-01")  # past the publication delay

    def pages(direction: str) -> list[list[tuple[str, str]]]:
        return [
            [
                (e["name"], e["reference"])
                for e in search(register, "wang", limit=4, offset=o, direction=direction)["entries"]
            ]
            for o in range(0, 24, 4)
        ]

    for direction in ("asc", "desc"):
        monkeypatch.setattr("credo.services.public.FIRST_WALK", 10**6)  # one walk sees every match
        whole = pages(direction)
        monkeypatch.setattr("credo.services.public.FIRST_WALK", 0)  # a walk of 1, then 8
        assert pages(direction) == whole
        flat = [entry for page in whole for entry in page]
        assert len(flat) == len(set(flat)) > 8
        key = sorted(flat, key=lambda e: e[0], reverse=direction == "desc")
        assert [name for name, _ in flat] == [name for name, _ in key]
