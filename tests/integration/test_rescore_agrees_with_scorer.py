"""The set-based SQL rescore must equal the pure scorer, subject by subject, on both stores."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from credo.domain.policy_load import load_policy
from credo.services.filing import subject_standing
from credo.services.register import Register
from credo.store.rescore import SMALL_POINTS, rescore_all
from tests.conftest import TODAY
from tests.factories import (
    WORKED_POLICY,
    example_policy,
    file_rows,
    record,
    seed_register,
    wipe,
)

CATEGORIES = {
    "city-court": ["court.order_defiance"],
    "city-tax": ["tax.arrears"],
    "city-civil": ["civic.volunteering"],
    "city-personnel": ["employment.commendation"],
}

record_strategy = st.tuples(
    st.sampled_from(sorted(CATEGORIES)),
    st.integers(1, 6),  # subject
    st.integers(0, 4 * 365),  # days before TODAY
)


def _stored_vs_pure(register: Register, as_of: date) -> list[tuple[object, ...]]:
    mismatches = []
    with register.write() as conn:
        version_id, policy = register.active_policy(conn)
        rescore_all(conn, policy, version_id, as_of, register.clock.now())
        stored = conn.execute(
            text("SELECT subject_id, score, grade, lists, measures FROM standings")
        ).all()
        for row in stored:
            pure = subject_standing(conn, policy, row.subject_id, as_of)
            expected = (pure.score, pure.grade, ",".join(pure.lists), ",".join(pure.measures))
            if tuple(row[1:]) != expected:
                mismatches.append((row.subject_id, tuple(row[1:]), expected))
    assert len(stored) == 6
    return mismatches


def _random_register_agrees(
    register: Register, records: list[tuple[str, int, int]], as_of_offset: int
) -> None:
    wipe(
        register,
        (
            "standings",
            "notices",
            "cases",
            "records",
            "inquiries",
            "subjects",
            "batches",
            "audit_entries",
            "policy_versions",
            "register_state",
        ),
    )
    seed_register(register, subjects=6)
    by_authority: dict[str, list[dict[str, object]]] = {}
    for n, (authority, subject, days) in enumerate(records):
        category = CATEGORIES[authority][0]
        by_authority.setdefault(authority, []).append(
            record(f"R{n}", f"s-{subject:03d}", category, TODAY - timedelta(days=days))
        )
    for authority, items in by_authority.items():
        report = file_rows(register, authority, items)
        assert report.rejected == 0
    assert _stored_vs_pure(register, TODAY + timedelta(days=as_of_offset)) == []


RANDOM_REGISTERS = given(
    records=st.lists(record_strategy, max_size=40),
    as_of_offset=st.integers(-4 * 365, 3 * 365),
)
FIXTURE_PER_EXAMPLE = [HealthCheck.function_scoped_fixture]


@settings(max_examples=25, deadline=None, suppress_health_check=FIXTURE_PER_EXAMPLE)
@RANDOM_REGISTERS
def test_sql_rescore_equals_pure_scorer_on_random_registers(
    register: Register, records: list[tuple[str, int, int]], as_of_offset: int
) -> None:
    _random_register_agrees(register, records, as_of_offset)


@settings(max_examples=10, deadline=None, suppress_health_check=FIXTURE_PER_EXAMPLE)
@RANDOM_REGISTERS
def test_sql_rescore_equals_pure_scorer_when_partitioned_by_subject(
    partitioned_register: Register, records: list[tuple[str, int, int]], as_of_offset: int
) -> None:
    """The same on PostgreSQL hash-partitioned by subject (`credo partition`)."""
    _random_register_agrees(partitioned_register, records, as_of_offset)


def test_sql_rescore_equals_pure_scorer_on_the_example_policy(register: Register) -> None:
    from credo import synthetic

    seed_register(register, subjects=0, policy=example_policy())
    policy = load_policy(example_policy())
    shape = synthetic.Shape(subjects=300, records=3_000, today=TODAY, seed=7)
    from credo.services.subjects import import_subjects
    from tests.factories import rows

    import_subjects(register, rows(synthetic.subjects(shape)), actor="test", source="t")
    by_authority: dict[str, list[dict[str, str]]] = {}
    for authority, row in synthetic.records(policy, shape):
        by_authority.setdefault(authority, []).append(row)
    for authority, items in by_authority.items():
        assert file_rows(register, authority, items).rejected == 0
    for as_of in (TODAY, TODAY - timedelta(days=400), TODAY + timedelta(days=200)):
        with register.write() as conn:
            version_id, pol = register.active_policy(conn)
            rescore_all(conn, pol, version_id, as_of, register.clock.now())
            stored = conn.execute(
                text("SELECT subject_id, score, grade, lists, measures FROM standings")
            ).all()
            assert len(stored) == 300
            for row in stored:
                pure = subject_standing(conn, pol, row.subject_id, as_of)
                assert tuple(row[1:]) == (
                    pure.score,
                    pure.grade,
                    ",".join(pure.lists),
                    ",".join(pure.measures),
                ), row.subject_id


def test_sql_rescore_equals_pure_scorer_with_points_beyond_32_bits(register: Register) -> None:
    """Points above `SMALL_POINTS` are multiplied as BIGINT: sums past 2**31 stay exact."""
    assert SMALL_POINTS < 1_500
    policy = (
        WORKED_POLICY.replace("points = -60", "points = -2000000000")
        .replace("points = 20\n", "points = 1500\n")
        .replace("cap = 60", "cap = 2000000000")
    )
    seed_register(register, subjects=6, policy=policy)
    items: dict[str, list[dict[str, object]]] = {"city-tax": [], "city-civil": []}
    for n in range(5):  # s-001: -1e10; s-002: +3,000 after the cap; s-003 both
        items["city-tax"].append(record(f"T{n}", "s-001", "tax.arrears", TODAY))
        items["city-tax"].append(record(f"U{n}", "s-003", "tax.arrears", TODAY))
    for n in range(2):
        items["city-civil"].append(record(f"V{n}", "s-002", "civic.volunteering", TODAY))
        items["city-civil"].append(record(f"W{n}", "s-003", "civic.volunteering", TODAY))
    for authority, rows_ in items.items():
        assert file_rows(register, authority, rows_).rejected == 0
    assert _stored_vs_pure(register, TODAY) == []


def test_worked_policy_loads() -> None:
    assert load_policy(WORKED_POLICY).label == "worked@1"
