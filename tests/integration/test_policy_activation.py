"""Activating policies: one active version, audited, rescored, ends_on recomputed in SQL."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest
from sqlalchemy import func, select

from credo.domain.durations import Duration
from credo.domain.errors import ConflictError, PolicyError
from credo.services.filing import subject_standing
from credo.services.policies import activate_policy
from credo.services.register import Register
from credo.services.subjects import import_subjects
from credo.store.tables import audit_entries, policy_versions, records, standings
from tests.conftest import TODAY
from tests.factories import (
    WORKED_POLICY,
    dates_policy,
    example_policy,
    file_rows,
    record,
    rows,
    seed_register,
    subject,
)


def policy_rows(register: Register) -> list[Any]:
    with register.read() as conn:
        return conn.execute(select(policy_versions).order_by(policy_versions.c.id)).all()


def audit_rows(register: Register) -> list[Any]:
    with register.read() as conn:
        return conn.execute(select(audit_entries).order_by(audit_entries.c.seq)).all()


def active_labels(register: Register) -> list[str]:
    return [f"{r.policy_id}@{r.version}" for r in policy_rows(register) if r.active]


def snapshot(register: Register) -> tuple[Any, ...]:
    """Everything an activation may change."""
    with register.read() as conn:
        return (
            conn.execute(select(policy_versions).order_by(policy_versions.c.id)).all(),
            conn.execute(select(audit_entries).order_by(audit_entries.c.seq)).all(),
            conn.execute(select(records.c.id, records.c.ends_on).order_by(records.c.id)).all(),
            conn.execute(select(standings).order_by(standings.c.subject_id)).all(),
        )


def test_exactly_one_version_is_active_after_activating_two(register: Register) -> None:
    first = activate_policy(register, WORKED_POLICY, actor="test", comment="test")
    second = activate_policy(register, example_policy(), actor="test", comment="go live")
    assert first.version_id != second.version_id
    assert active_labels(register) == ["example-city@2026.1"]
    assert len(policy_rows(register)) == 2
    with register.read() as conn:
        assert (
            conn.execute(
                select(func.count()).select_from(policy_versions).where(policy_versions.c.active)
            ).scalar_one()
            == 1
        )
        assert register.active_policy(conn)[1].label == "example-city@2026.1"
    back = activate_policy(register, WORKED_POLICY, actor="test", comment="test")
    assert back.version_id == first.version_id
    assert not back.already_active
    assert active_labels(register) == ["worked@1"]
    assert len(policy_rows(register)) == 2


def test_reactivating_the_active_text_is_a_no_op(register: Register) -> None:
    seed_register(register)
    before = snapshot(register)
    again = activate_policy(register, WORKED_POLICY, actor="someone-else", comment="again")
    assert again.already_active
    assert again.rescored == 0
    assert snapshot(register) == before


def test_other_text_under_the_same_id_and_version_is_refused(register: Register) -> None:
    seed_register(register)
    assert (
        file_rows(
            register, "city-court", [record("R-1", "s-001", "court.order_defiance", "2026-01-10")]
        ).stored
        == 1
    )
    before = snapshot(register)
    changed = WORKED_POLICY.replace('valid_for = "P2Y"', 'valid_for = "P3Y"', 1)
    assert changed != WORKED_POLICY
    with pytest.raises(ConflictError) as caught:
        activate_policy(register, changed, actor="test", comment="test")
    assert "worked@1" in str(caught.value)
    assert snapshot(register) == before
    # the same holds while another version is active
    activate_policy(register, example_policy(), actor="test", comment="test")
    with pytest.raises(ConflictError):
        activate_policy(register, changed, actor="test", comment="test")
    assert active_labels(register) == ["example-city@2026.1"]


def test_activation_writes_a_policy_activated_audit_entry(register: Register) -> None:
    activate_policy(register, WORKED_POLICY, actor="alice", comment="first")
    activate_policy(register, example_policy(), actor="bob", comment="second")
    entries = audit_rows(register)
    assert [(e.seq, e.action, e.actor) for e in entries] == [
        (1, "policy.activated", "alice"),
        (2, "policy.activated", "bob"),
    ]
    first, second = (json.loads(e.payload) for e in entries)
    assert first["policy"] == "worked@1" and first["previous"] is None
    assert first["comment"] == "first"
    assert second["policy"] == "example-city@2026.1" and second["previous"] == "worked@1"
    assert entries[1].prev_hash == entries[0].hash


def test_activation_rescores_every_subject(register: Register) -> None:
    seed_register(register, subjects=3)
    file_rows(
        register,
        "city-court",
        [
            record("R-1", "s-001", "court.order_defiance", "2026-01-10"),
            record("R-2", "s-001", "court.order_defiance", "2026-03-01"),
        ],
    )
    stricter = WORKED_POLICY.replace('version = "1"', 'version = "2"').replace(
        "min = 900", "min = 950"
    )
    result = activate_policy(register, stricter, actor="test", comment="test")
    assert result.rescored == 3
    with register.read() as conn:
        version_id, policy = register.active_policy(conn)
        stored = conn.execute(select(standings).order_by(standings.c.subject_id)).all()
        assert [r.policy_version_id for r in stored] == [version_id] * 3
        for row in stored:
            pure = subject_standing(conn, policy, row.subject_id, TODAY)
            assert (row.score, row.grade, row.lists, row.measures) == (
                pure.score,
                pure.grade,
                ",".join(pure.lists),
                ",".join(pure.measures),
            )
    assert [(r.subject_id, r.grade) for r in stored] == [
        ("s-001", "D"),
        ("s-002", "B"),
        ("s-003", "B"),
    ]


TRICKY_DAYS = [
    "2024-01-31",
    "2023-01-31",
    "2024-02-29",
    "2023-02-28",
    "2024-08-31",
    "2023-08-31",
    "2024-03-31",
    "2024-05-31",
    "2024-10-31",
    "2024-12-31",
    "2023-12-31",
    "2022-06-30",
    "2020-02-29",
    "2025-12-31",
    "2026-01-31",
    "2026-02-28",
]
# Each category gets a different validity in every version, so every duration goes
# through the SQL recomputation.
VERSIONS = {
    "2": {"a": "P1M", "b": "P1Y", "c": "P1M1D", "d": "P18M", "e": "P3D"},
    "3": {"a": "P1Y", "b": "P1M1D", "c": "P18M", "d": "P3D", "e": "P2Y11M30D"},
    "4": {"a": "P1M1D", "b": "P18M", "c": "P3D", "d": "P1M", "e": "P13M"},
}


def test_activation_recomputes_ends_on_as_the_python_calendar_does(register: Register) -> None:
    activate_policy(
        register, dates_policy({n: "P1D" for n in "abcde"}, "1"), actor="test", comment="test"
    )
    import_subjects(register, rows([subject(1)]), actor="test", source="t")
    report = file_rows(
        register,
        "hr",
        [
            record(f"{name}-{day}", "s-001", f"d.{name}", day)
            for name in "abcde"
            for day in TRICKY_DAYS
        ],
    )
    assert report.rejected == 0
    for version, durations in VERSIONS.items():
        result = activate_policy(
            register, dates_policy(durations, version), actor="test", comment="test"
        )
        assert sorted(result.changed_categories) == [f"d.{n}" for n in "abcde"]
        with register.read() as conn:
            stored = {
                r.reference: r.ends_on
                for r in conn.execute(select(records.c.reference, records.c.ends_on))
            }
        wrong = {
            (ref, durations[ref[0]], str(ends))
            for ref, ends in stored.items()
            if ends != Duration.parse(durations[ref[0]]).add_to(date.fromisoformat(ref[2:]))
        }
        assert wrong == set(), f"version {version}: ends_on differs from Duration.add_to"
    assert stored["b-2024-01-31"] == date(2025, 7, 31)  # P18M
    assert stored["c-2024-01-31"] == date(2024, 2, 3)  # P3D


def test_ends_on_matches_for_the_brief_examples(register: Register) -> None:
    durations = {"p1m": "P1M", "p1y": "P1Y", "p1m1d": "P1M1D", "p18m": "P18M", "p3d": "P3D"}
    activate_policy(
        register, dates_policy({n: "P1D" for n in durations}, "1"), actor="test", comment="test"
    )
    import_subjects(register, rows([subject(1)]), actor="test", source="t")
    file_rows(
        register,
        "hr",
        [
            record(f"{name}/{day}", "s-001", f"d.{name}", day)
            for name in durations
            for day in ("2024-01-31", "2024-02-29", "2025-08-31")
        ],
    )
    activate_policy(register, dates_policy(durations, "2"), actor="test", comment="test")
    with register.read() as conn:
        stored = {
            r.reference: r.ends_on
            for r in conn.execute(select(records.c.reference, records.c.ends_on))
        }
    assert stored == {
        "p1m/2024-01-31": date(2024, 2, 29),
        "p1m/2024-02-29": date(2024, 3, 29),
        "p1m/2025-08-31": date(2025, 9, 30),
        "p1y/2024-01-31": date(2025, 1, 31),
        "p1y/2024-02-29": date(2025, 2, 28),
        "p1y/2025-08-31": date(2026, 8, 31),
        "p1m1d/2024-01-31": date(2024, 3, 1),
        "p1m1d/2024-02-29": date(2024, 3, 30),
        "p1m1d/2025-08-31": date(2025, 10, 1),
        "p18m/2024-01-31": date(2025, 7, 31),
        "p18m/2024-02-29": date(2025, 8, 29),
        "p18m/2025-08-31": date(2027, 2, 28),
        "p3d/2024-01-31": date(2024, 2, 3),
        "p3d/2024-02-29": date(2024, 3, 3),
        "p3d/2025-08-31": date(2025, 9, 3),
    }


BAD_POLICIES = {
    "not toml": "[policy\nid = ",
    "lifelong category": WORKED_POLICY.replace('version = "1"', 'version = "9"').replace(
        'valid_for = "P2Y"', 'valid_for = "P11Y"'
    ),
    "belief category": WORKED_POLICY.replace('version = "1"', 'version = "9"')
    .replace(
        'id = "civic.volunteering"\nname = "Volunteering"',
        'id = "civic.party_loyalty"\nname = "Party loyalty"',
    )
    .replace('"civic.volunteering"', '"civic.party_loyalty"'),
    "unknown key": WORKED_POLICY.replace('version = "1"', 'version = "9"').replace(
        "points = -60", "points = -60\nweight = 2"
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_POLICIES))
def test_a_bad_policy_changes_nothing(register: Register, name: str) -> None:
    seed_register(register)
    file_rows(
        register, "city-court", [record("R-1", "s-001", "court.order_defiance", "2026-01-10")]
    )
    before = snapshot(register)
    with pytest.raises(PolicyError):
        activate_policy(register, BAD_POLICIES[name], actor="test", comment="test")
    assert snapshot(register) == before
    assert active_labels(register) == ["worked@1"]
