"""Loading a policy file (DESIGN 4.1) and its refusals by design (DESIGN 2)."""

from __future__ import annotations

import pytest

from credo.domain.durations import Duration
from credo.domain.errors import PolicyError, Problem
from credo.domain.guard import Context
from credo.domain.policy_load import load_policy

HEADER = """
[policy]
id = "test-city"
version = "2026.1"
base_score = 1000
score_min = 0
score_max = 2000
objection_period = "P30D"
"""

GRADES = """
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
"""

AUTHORITIES = """
[[authorities]]
id = "city-court"
name = "City Court"
may_file = ["judicial"]

[[authorities]]
id = "city-personnel"
name = "City Personnel Office"
may_file = ["employment", "training.completed"]
"""

LISTS = """
[[lists]]
id = "dishonest"
kind = "black"
name = "Dishonest persons"
when = [ { any_of = ["court.order_defiance"] }, { grade_in = ["D"] } ]

[[lists]]
id = "exemplary"
kind = "red"
name = "Exemplary public servants"
when = [ { grade_in = ["A"] } ]
excludes = ["dishonest"]
"""

MEASURES = """
[[measures]]
id = "hr.no_promotion"
authority = "city-personnel"
kind = "sanction"
trigger = { list = "dishonest" }
contexts = ["judicial", "employment"]
blocks = "promotion"
text = "Not eligible for promotion while listed"
"""

PURPOSES = """
[[purposes]]
id = "promotion-review"
authorities = ["city-personnel"]
sees = ["grade", "lists", "measures", "explanation"]
legal_basis = "Civil Servant Law art. 45"
"""


def category(id: str = "court.order_defiance", **fields: object) -> str:
    """One [[categories]] table; `fields` override or add keys (None drops a key)."""
    values: dict[str, object] = {
        "name": "Defied an effective court order",
        "context": "judicial",
        "points": -100,
        "valid_for": "P2Y",
        "cap": -200,
        **fields,
    }
    lines = ["[[categories]]", f'id = "{id}"']
    for key, value in values.items():
        if value is None:
            continue
        lines.append(f'{key} = "{value}"' if isinstance(value, str) else f"{key} = {value}")
    return "\n".join(lines) + "\n"


TRAINING = category(
    "training.completed",
    name="Completed professional training",
    context="training",
    points=10,
    valid_for="P1Y",
    cap=30,
)


def policy_text(
    *,
    top: str = "",
    header: str = HEADER,
    grades: str = GRADES,
    authorities: str = AUTHORITIES,
    categories: str | None = None,
    lists: str = LISTS,
    measures: str = MEASURES,
    purposes: str = PURPOSES,
    extra: str = "",
) -> str:
    """A valid policy, with any table swapped out or something appended."""
    if categories is None:
        categories = category() + "\n" + TRAINING
    return "\n".join(
        [top, header, grades, authorities, categories, lists, measures, purposes, extra]
    )


def problems_of(text: str) -> list[Problem]:
    with pytest.raises(PolicyError) as caught:
        load_policy(text)
    return caught.value.problems


def only_problem(text: str) -> Problem:
    problems = problems_of(text)
    assert len(problems) == 1, problems
    return problems[0]


def test_a_valid_policy_loads():
    policy = load_policy(policy_text())

    assert policy.label == "test-city@2026.1"
    assert [g.name for g in policy.grades] == ["A", "B", "C", "D"]
    defiance = policy.category_by_id["court.order_defiance"]
    assert (defiance.context, defiance.points, defiance.cap) == (Context.JUDICIAL, -100, -200)
    assert str(defiance.valid_for) == "P2Y"
    assert defiance.suspend_while_disputed is True
    assert policy.may_file("city-personnel", "training.completed")
    assert not policy.may_file("city-court", "training.completed")


# --- DESIGN 2: no beliefs, no loyalty -------------------------------------------------


@pytest.mark.parametrize(
    ("context", "reason"),
    [
        ("political", "political opinion or loyalty is never scored"),
        ("loyalty", "political opinion or loyalty is never scored"),
        ("party_activity", "party activity is never scored"),
        ("religion", "religion or belief is never scored"),
        ("ethnicity", "ethnicity is never scored"),
        ("union_membership", "union membership is never scored"),
        ("health", "health is never scored"),
        ("sex_life", "sex life and sexual orientation are never scored"),
        ("private_life", "lawful private life is not an official decision"),
    ],
)
def test_a_protected_context_is_refused_with_its_own_reason(context, reason):
    text = policy_text(
        categories=category("civic.thing", name="Some thing", context=context, points=-10, cap=None)
    )

    problem = only_problem(text)

    assert problem.location == "categories[civic.thing].context"
    assert repr(context) in problem.message
    assert reason in problem.message
    assert "closed list" not in problem.message


def test_a_context_off_the_closed_list_is_refused_as_such():
    text = policy_text(
        categories=category(
            "civic.marathon", name="Ran a marathon", context="sports", points=5, cap=None
        )
    )

    problem = only_problem(text)

    assert problem.location == "categories[civic.marathon].context"
    assert "'sports' is not on the closed list" in problem.message
    assert all(c.value in problem.message for c in Context)


@pytest.mark.parametrize("context", [c.value for c in Context])
def test_every_context_on_the_closed_list_is_accepted(context):
    policy = load_policy(policy_text(categories=category(context=context) + TRAINING))

    assert policy.category_by_id["court.order_defiance"].context == Context(context)


def test_a_category_named_for_party_dues_is_refused_whatever_its_context():
    text = policy_text(
        categories=TRAINING
        + category(
            "civic.dues", name="Party membership dues unpaid", context="civic", points=-10, cap=None
        )
    )

    problem = only_problem(text)

    assert problem.location.startswith("categories[civic.dues]")
    assert "Party membership dues unpaid" in problem.message
    assert "party activity is never scored" in problem.message


def test_a_category_name_refusal_names_the_name_key():
    text = policy_text(
        categories=TRAINING
        + category(
            "civic.dues", name="Party membership dues unpaid", context="civic", points=-10, cap=None
        )
    )

    assert only_problem(text).location == "categories[civic.dues].name"


def test_ideological_study_points_are_not_training():
    text = policy_text(
        categories=category()
        + category(
            "training.xuexi",
            name="Ideological study points",
            context="training",
            points=5,
            cap=None,
        )
    )

    problem = only_problem(text)

    assert problem.location.startswith("categories[training.xuexi]")
    assert "ideological study is not professional training" in problem.message


def test_a_measure_cannot_see_a_protected_context():
    measures = MEASURES.replace(
        'contexts = ["judicial", "employment"]', 'contexts = ["judicial", "religion"]'
    )

    problem = only_problem(policy_text(measures=measures))

    assert problem.location == "measures[hr.no_promotion].contexts[2]"
    assert "religion or belief is never scored" in problem.message


# --- DESIGN 2: no lifelong scores -----------------------------------------------------


@pytest.mark.parametrize("valid_for", ["P11Y", "P10Y1D", "P10Y1M", "P3653D", "P3652D"])
def test_validity_beyond_ten_years_is_refused(valid_for):
    problem = only_problem(policy_text(categories=category(valid_for=valid_for) + TRAINING))

    assert problem.location == "categories[court.order_defiance].valid_for"
    assert "10-year maximum" in problem.message


@pytest.mark.parametrize("valid_for", ["P10Y", "P120M", "P9Y11M", "P3651D"])
def test_validity_of_ten_years_or_less_is_accepted(valid_for):
    policy = load_policy(policy_text(categories=category(valid_for=valid_for) + TRAINING))

    assert policy.category_by_id["court.order_defiance"].valid_for == Duration.parse(valid_for)


@pytest.mark.parametrize("valid_for", ["PT5H", "2Y", "forever"])
def test_validity_that_is_not_a_duration_is_refused(valid_for):
    problem = only_problem(policy_text(categories=category(valid_for=valid_for) + TRAINING))

    assert problem.location == "categories[court.order_defiance].valid_for"
    assert "ISO-8601 duration" in problem.message


# --- unknown keys ---------------------------------------------------------------------


def test_an_unknown_top_level_key_is_refused():
    problem = only_problem(policy_text(top="colour = 1"))

    assert problem.location == "colour"
    assert problem.message == "unknown key 'colour'"


def test_an_unknown_key_in_the_policy_table_is_refused():
    problem = only_problem(policy_text(header=HEADER + 'grace_period = "P1Y"\n'))

    assert problem.location == "policy.grace_period"
    assert "grace_period" in problem.message


def test_an_unknown_key_in_a_category_is_refused():
    problem = only_problem(policy_text(categories=category(weight=3) + TRAINING))

    assert problem.location == "categories[court.order_defiance].weight"
    assert problem.message == "unknown key 'weight'"


# --- cross references -----------------------------------------------------------------


def test_a_list_condition_naming_an_unknown_category_is_refused():
    lists = LISTS.replace('any_of = ["court.order_defiance"]', 'any_of = ["court.contempt"]')

    problem = only_problem(policy_text(lists=lists))

    assert problem.location == "lists[dishonest].when[1].any_of"
    assert problem.message == "unknown category 'court.contempt'"


def test_a_list_condition_naming_an_unknown_grade_is_refused():
    lists = LISTS.replace('grade_in = ["D"]', 'grade_in = ["E"]')

    problem = only_problem(policy_text(lists=lists))

    assert problem.location == "lists[dishonest].when[2].grade_in"
    assert problem.message == "unknown grade 'E'"


def test_a_list_excluding_an_unknown_list_is_refused():
    lists = LISTS.replace('excludes = ["dishonest"]', 'excludes = ["blacklist"]')

    problem = only_problem(policy_text(lists=lists))

    assert problem.location == "lists[exemplary].excludes"
    assert problem.message == "unknown list 'blacklist'"


def test_a_list_excluding_itself_is_refused():
    lists = LISTS.replace('excludes = ["dishonest"]', 'excludes = ["exemplary"]')

    problem = only_problem(policy_text(lists=lists))

    assert problem.location == "lists[exemplary].excludes"
    assert "cannot exclude itself" in problem.message


def test_lists_excluding_each_other_in_a_cycle_are_refused():
    lists = LISTS.replace(
        'when = [ { any_of = ["court.order_defiance"] }, { grade_in = ["D"] } ]',
        'when = [ { any_of = ["court.order_defiance"] }, { grade_in = ["D"] } ]\n'
        'excludes = ["exemplary"]',
    )

    problem = only_problem(policy_text(lists=lists))

    assert problem.location.startswith("lists")
    assert "cycle" in problem.message


def test_a_measure_of_an_unknown_authority_is_refused():
    measures = MEASURES.replace('authority = "city-personnel"', 'authority = "city-zoo"')

    problem = only_problem(policy_text(measures=measures))

    assert problem.location == "measures[hr.no_promotion].authority"
    assert problem.message == "unknown authority 'city-zoo'"


def test_a_measure_triggered_by_an_unknown_list_is_refused():
    measures = MEASURES.replace('{ list = "dishonest" }', '{ list = "blacklist" }')

    problem = only_problem(policy_text(measures=measures))

    assert problem.location == "measures[hr.no_promotion].trigger.list"
    assert problem.message == "unknown list 'blacklist'"


def test_a_measure_triggered_by_an_unknown_grade_is_refused():
    measures = MEASURES.replace('{ list = "dishonest" }', '{ grade_in = ["F"] }')

    problem = only_problem(policy_text(measures=measures))

    assert problem.location == "measures[hr.no_promotion].trigger.grade_in"
    assert problem.message == "unknown grade 'F'"


def test_a_purpose_for_an_unknown_authority_is_refused():
    purposes = PURPOSES.replace(
        'authorities = ["city-personnel"]', 'authorities = ["city-personnel", "city-zoo"]'
    )

    problem = only_problem(policy_text(purposes=purposes))

    assert problem.location == "purposes[promotion-review].authorities"
    assert problem.message == "unknown authority 'city-zoo'"


def test_an_authority_filing_neither_a_context_nor_a_category_is_refused():
    authorities = AUTHORITIES.replace(
        'may_file = ["judicial"]', 'may_file = ["judicial", "gossip"]'
    )

    problem = only_problem(policy_text(authorities=authorities))

    assert problem.location == "authorities[city-court].may_file"
    assert problem.message == "'gossip' is neither a context nor a category id"


COURT = AUTHORITIES[: AUTHORITIES.index("[[authorities]]", 10)]
EXEMPLARY = LISTS[LISTS.index('[[lists]]\nid = "exemplary"') :]


@pytest.mark.parametrize(
    ("table", "ident", "tables"),
    [
        ("categories", "court.order_defiance", {"categories": category() + category() + TRAINING}),
        ("authorities", "city-court", {"authorities": AUTHORITIES + COURT}),
        ("lists", "exemplary", {"lists": LISTS + EXEMPLARY}),
        ("purposes", "promotion-review", {"purposes": PURPOSES + PURPOSES}),
    ],
)
def test_an_id_used_twice_is_refused(table, ident, tables):
    problem = only_problem(policy_text(**tables))

    assert problem.location == f"{table}[{ident}]"
    assert problem.message == f"id {ident!r} is used 2 times"


def test_grades_not_listed_highest_first_are_refused():
    grades = GRADES.replace('name = "B"\nmin = 1000', 'name = "B"\nmin = 1100')

    problem = only_problem(policy_text(grades=grades))

    assert problem.location == "grades[B].min"
    assert "highest first" in problem.message


def test_a_last_grade_above_score_min_is_refused():
    grades = GRADES.replace('name = "D"\nmin = 0', 'name = "D"\nmin = 100')

    problem = only_problem(policy_text(grades=grades))

    assert problem.location == "grades[D].min"
    assert "score_min" in problem.message


@pytest.mark.parametrize("base_score", [-1, 2001])
def test_a_base_score_outside_the_bounds_is_refused(base_score):
    header = HEADER.replace("base_score = 1000", f"base_score = {base_score}")

    problem = only_problem(policy_text(header=header))

    assert problem.location.startswith("policy")
    assert "base_score must lie between score_min and score_max" in problem.message


def test_a_base_score_refusal_names_the_base_score_key():
    header = HEADER.replace("base_score = 1000", "base_score = 2001")

    assert only_problem(policy_text(header=header)).location == "policy.base_score"


@pytest.mark.parametrize(
    ("points", "cap"),
    [(-100, 200), (20, -40), (-100, 0)],
)
def test_a_cap_of_the_wrong_sign_is_refused(points, cap):
    text = policy_text(categories=category(points=points, cap=cap) + TRAINING)

    problem = only_problem(text)

    assert problem.location.startswith("categories[court.order_defiance]")
    assert f"cap {cap} must be non-zero and have the same sign as points {points}" in (
        problem.message
    )


def test_a_cap_refusal_names_the_cap_key():
    text = policy_text(categories=category(points=-100, cap=200) + TRAINING)

    assert only_problem(text).location == "categories[court.order_defiance].cap"


def test_invalid_toml_is_a_policy_error():
    with pytest.raises(PolicyError, match="not valid TOML") as caught:
        load_policy(policy_text() + "\n[[categories]\nid = 'broken'\n")

    assert caught.value.problems and caught.value.problems[0].message


def test_every_problem_in_the_tables_is_reported_at_once():
    categories = (
        category(context="political")
        + category(
            "tax.arrears", name="Tax arrears", context="tax", points=-60, valid_for="P11Y", cap=None
        )
        + category(
            "training.completed",
            name="Completed training",
            context="training",
            points=10,
            valid_for="P1Y",
            cap=None,
            colour="blue",
        )
    )

    problems = problems_of(policy_text(categories=categories))

    assert {p.location for p in problems} >= {
        "categories[court.order_defiance].context",
        "categories[tax.arrears].valid_for",
        "categories[training.completed].colour",
    }


def test_every_broken_reference_is_reported_at_once():
    measures = MEASURES.replace('authority = "city-personnel"', 'authority = "city-zoo"')
    lists = LISTS.replace('grade_in = ["D"]', 'grade_in = ["E"]')
    purposes = PURPOSES.replace('"city-personnel"', '"city-zoo"')

    problems = problems_of(policy_text(measures=measures, lists=lists, purposes=purposes))

    assert {p.location for p in problems} == {
        "measures[hr.no_promotion].authority",
        "lists[dishonest].when[2].grade_in",
        "purposes[promotion-review].authorities",
    }
