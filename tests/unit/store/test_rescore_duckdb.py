"""DuckDB's forms of the rescore SQL: grades tested by score bounds, masks for memberships.

The preview's DuckDB scoring never builds the grade of a measure's scope as a string: it
tests the scope's score against the bands' bounds (`RescoreSql._grade_in`). These tests
hold that test equal to the grade the pure scorer gives, for every set of grades a rule
can name and every score in range, and the masks' numbering equal to the names.
"""

from __future__ import annotations

import itertools

import duckdb
import pytest

from credo.domain.policy import Policy
from credo.domain.policy_load import load_policy
from credo.domain.scoring import _judge
from credo.store.preview_sql import numbering
from credo.store.rescore import Bits, RescoreSql
from tests.factories import example_policy


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy(example_policy())


def _grade(policy: Policy, score: int) -> str:
    """The grade the pure scorer gives a subject whose points bring it to `score`."""
    judged, grade, _ = _judge(policy, score - policy.policy.base_score, set())
    assert judged == score
    return grade


def test_every_set_of_grades_is_tested_by_score_exactly_as_by_name(policy: Policy) -> None:
    sql = RescoreSql(policy)
    main = sql.scopes[0]
    names = [g.name for g in policy.grades]
    low, high = policy.policy.score_min, policy.policy.score_max
    duck = duckdb.connect()
    duck.execute(
        f"CREATE TABLE t AS SELECT CAST(range AS INTEGER) AS score FROM range({low}, {high + 1})"
    )
    for size in range(len(names) + 1):
        for chosen in itertools.combinations(names, size):
            condition = sql._grade_in(main, chosen, "duckdb")
            rows = duck.execute(f"SELECT score, {condition} FROM t ORDER BY score").fetchall()
            wrong = [s for s, held in rows if bool(held) != (_grade(policy, s) in chosen)]
            assert not wrong, (chosen, condition, wrong[:5])


def test_other_engines_still_compare_grade_names(policy: Policy) -> None:
    sql = RescoreSql(policy)
    assert sql._grade_in(sql.scopes[0], ["A", "D"], "postgresql") == "grade IN ('A', 'D')"


def test_masks_number_the_active_ids_first_then_the_candidates_new_ones(policy: Policy) -> None:
    text = example_policy()
    first = policy.measures[0].id
    candidate = load_policy(
        text.replace('version = "', 'version = "9', 1).replace(f'id = "{first}"', 'id = "x.new"')
    )
    bits = numbering(policy, candidate)
    assert bits is not None
    assert bits.lists == tuple(r.id for r in policy.lists)
    assert bits.measures == (*(m.id for m in policy.measures), "x.new")
    # the active numbering alone is a prefix: a kept scoring is the same for any candidate
    alone = numbering(policy)
    assert alone is not None and bits.measures[: len(alone.measures)] == alone.measures
    order = [m.id for m in candidate.measures]
    mask = (1 << bits.measures.index("x.new")) | 1 << 1
    assert bits.names(mask, "measures", order) == ",".join(
        i for i in order if i in {"x.new", bits.measures[1]}
    )


def test_too_many_ids_for_a_mask_fall_back_to_names() -> None:
    assert Bits(tuple(f"l{n}" for n in range(62)), ()).fits()
    assert not Bits((), tuple(f"m{n}" for n in range(63))).fits()
