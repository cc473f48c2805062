"""DESIGN section 5, the scoring semantics, one rule at a time."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from credo.domain.policy_load import load_policy
from credo.domain.records import Dispute, is_effective
from credo.domain.scoring import compute_standing

# The worked example's policy, with a few more categories to exercise caps, clamps and
# measure contexts. No objection_period: the default (P30D) applies.
POLICY = """
[policy]
id = "example-city"
version = "2026.1"
base_score = 1000
score_min = 0
score_max = 2000

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
id = "city-court"
name = "City Court"
may_file = ["judicial"]
[[authorities]]
id = "city-tax"
name = "City Tax Bureau"
may_file = ["tax"]
[[authorities]]
id = "city-personnel"
name = "City Personnel Office"
may_file = ["administrative", "employment", "training", "civic", "finance"]

[[categories]]
id = "court.order_defiance"
name = "Defied an effective court order"
context = "judicial"
points = -100
valid_for = "P2Y"
cap = -200

[[categories]]
id = "tax.arrears"
name = "Tax arrears"
context = "tax"
points = -60
valid_for = "P1Y"
repairable = true
suspend_while_disputed = false

[[categories]]
id = "civic.volunteering"
name = "Volunteering"
context = "civic"
points = 20
valid_for = "P1Y"

[[categories]]
id = "admin.warning"
name = "Administrative warning"
context = "administrative"
points = -100
valid_for = "P1Y"
cap = -250

[[categories]]
id = "civic.award"
name = "Civic award"
context = "civic"
points = 100
valid_for = "P1Y"
cap = 250

[[categories]]
id = "training.failed"
name = "Failed mandatory professional training"
context = "training"
points = -150
valid_for = "P1Y"

[[categories]]
id = "finance.fraud"
name = "Financial fraud"
context = "finance"
points = -700
valid_for = "P5Y"

[[categories]]
id = "civic.medal"
name = "Medal for bravery"
context = "civic"
points = 800
valid_for = "P1Y"

[[lists]]
id = "dishonest"
kind = "black"
name = "Dishonest persons subject to enforcement"
when = [ { any_of = ["court.order_defiance"] }, { grade_in = ["D"] } ]

[[lists]]
id = "exemplary"
kind = "red"
name = "Exemplary public servants"
when = [ { grade_in = ["A"] } ]
excludes = ["dishonest"]

[[measures]]
id = "tax.no_subsidy"
authority = "city-tax"
kind = "sanction"
trigger = { grade_in = ["D"] }
contexts = ["tax"]
text = "No subsidies"

[[measures]]
id = "hr.no_promotion"
authority = "city-personnel"
kind = "sanction"
trigger = { list = "dishonest" }
contexts = ["judicial", "employment"]
blocks = "promotion"
text = "Not eligible for promotion while listed"

[[measures]]
id = "training.no_award"
authority = "city-personnel"
kind = "sanction"
trigger = { grade_in = ["D"] }
contexts = ["training"]
text = "No training award"
"""


def d(text: str) -> date:
    return date.fromisoformat(text)


@pytest.fixture(scope="module")
def policy():
    return load_policy(POLICY)


@pytest.fixture
def standing(policy):
    """Compute a standing of subject s-001 from records as of an ISO day."""

    def compute(records, as_of):
        return compute_standing(policy, "s-001", records, d(as_of))

    return compute


@pytest.fixture
def effective(policy):
    """Whether one record is effective on an ISO day."""

    def check(record, day):
        category = policy.category_by_id[record.category]
        return is_effective(record, category, policy.policy.objection_period, d(day))

    return check


def points_of(standing):
    return [line.points for line in standing.explanation]


# --- the worked example ---------------------------------------------------------------


@pytest.fixture
def worked_example(make_record):
    return [
        make_record("court.order_defiance", "2026-03-01", reference="2026-EX-31"),
        make_record("tax.arrears", "2025-02-01", authority="city-tax", reference="T-2025-7"),
        make_record(
            "civic.volunteering", "2026-02-01", authority="city-personnel", reference="V-88"
        ),
        make_record("court.order_defiance", "2026-01-10", reference="2026-EX-17"),
    ]


def test_worked_example_on_15_march_2026(standing, worked_example):
    assert standing(worked_example, "2026-03-15").to_json() == {
        "subject_id": "s-001",
        "as_of": "2026-03-15",
        "policy": "example-city@2026.1",
        "score": 820,
        "grade": "D",
        "lists": ["dishonest"],
        "measures": ["hr.no_promotion"],
        "explanation": [
            {
                "authority": "city-court",
                "reference": "2026-EX-17",
                "category": "court.order_defiance",
                "points": -100,
                "effective_until": "2028-01-10",
                "capped": False,
            },
            {
                "authority": "city-personnel",
                "reference": "V-88",
                "category": "civic.volunteering",
                "points": 20,
                "effective_until": "2027-02-01",
                "capped": False,
            },
            {
                "authority": "city-court",
                "reference": "2026-EX-31",
                "category": "court.order_defiance",
                "points": -100,
                "effective_until": "2028-03-01",
                "capped": False,
            },
        ],
    }


def test_worked_example_on_10_january_2028(standing, worked_example):
    assert standing(worked_example, "2028-01-10").to_json() == {
        "subject_id": "s-001",
        "as_of": "2028-01-10",
        "policy": "example-city@2026.1",
        "score": 900,
        "grade": "C",
        "lists": ["dishonest"],
        "measures": ["hr.no_promotion"],
        "explanation": [
            {
                "authority": "city-court",
                "reference": "2026-EX-31",
                "category": "court.order_defiance",
                "points": -100,
                "effective_until": "2028-03-01",
                "capped": False,
            },
        ],
    }


def test_worked_example_tax_arrears_expire_on_their_anniversary(standing, worked_example):
    on_eve = standing(worked_example, "2026-01-31")
    assert "tax.arrears" in [line.category for line in on_eve.explanation]
    assert "tax.arrears" not in [
        line.category for line in standing(worked_example, "2026-02-01").explanation
    ]


def test_a_standing_next_changes_by_itself_when_its_first_counted_record_ends(
    standing, worked_example
):
    # the tax arrears ended on 1 February; the volunteering is the first of the rest to end
    assert standing(worked_example, "2026-03-15").next_end == d("2027-02-01")
    assert standing(worked_example, "2027-02-01").next_end == d("2028-01-10")
    assert standing(worked_example, "2028-03-01").next_end is None  # nothing counts


def test_nothing_on_file_gives_the_base_score(standing):
    result = standing([], "2026-03-15")
    assert (result.score, result.grade, result.lists, result.measures, result.explanation) == (
        1000,
        "B",
        (),
        (),
        (),
    )


# --- DESIGN 5.2: caps -----------------------------------------------------------------


def test_records_past_a_negative_cap_count_only_what_is_left(standing, make_record):
    records = [
        make_record("admin.warning", "2026-01-04", authority="city-personnel"),
        make_record("admin.warning", "2026-01-03", authority="city-personnel"),
        make_record("admin.warning", "2026-01-02", authority="city-personnel"),
        make_record("admin.warning", "2026-01-01", authority="city-personnel"),
    ]

    result = standing(records[1:], "2026-02-01")
    assert [(line.points, line.capped) for line in result.explanation] == [
        (-100, False),
        (-100, False),
        (-50, True),
    ]
    assert [line.reference for line in result.explanation] == [
        r.reference for r in reversed(records[1:])
    ]
    assert result.score == 750

    result = standing(records, "2026-02-01")
    assert [(line.points, line.capped) for line in result.explanation] == [
        (-100, False),
        (-100, False),
        (-50, True),
        (0, True),
    ]
    assert result.score == 750


def test_records_past_a_positive_cap_count_only_what_is_left(standing, make_record):
    records = [
        make_record("civic.award", f"2026-01-0{n}", authority="city-personnel") for n in range(1, 5)
    ]

    result = standing(records, "2026-02-01")

    assert [(line.points, line.capped) for line in result.explanation] == [
        (100, False),
        (100, False),
        (50, True),
        (0, True),
    ]
    assert result.score == 1250


def test_the_cap_is_reached_by_the_records_decided_first(standing, make_record):
    # Same day: authority then reference decide which record is the one capped.
    records = [
        make_record("admin.warning", "2026-01-05", authority="city-personnel", reference="B"),
        make_record("admin.warning", "2026-01-05", authority="city-court", reference="Z"),
        make_record("admin.warning", "2026-01-05", authority="city-personnel", reference="A"),
    ]

    result = standing(records, "2026-02-01")

    assert [(line.authority, line.reference, line.points) for line in result.explanation] == [
        ("city-court", "Z", -100),
        ("city-personnel", "A", -100),
        ("city-personnel", "B", -50),
    ]


def test_a_cap_is_per_category(standing, make_record):
    records = [make_record("court.order_defiance", f"2026-01-0{n}") for n in range(1, 4)]
    records += [make_record("admin.warning", "2026-01-01", authority="city-personnel")]

    result = standing(records, "2026-02-01")

    assert points_of(result) == [-100, -100, -100, 0]
    assert result.score == 1000 - 200 - 100


def test_an_expired_record_frees_room_under_the_cap(standing, make_record):
    records = [
        make_record("court.order_defiance", "2024-01-10"),
        make_record("court.order_defiance", "2025-01-10"),
        make_record("court.order_defiance", "2026-01-10"),
    ]

    assert points_of(standing(records, "2026-01-09")) == [-100, -100]
    assert points_of(standing(records, "2026-01-10")) == [-100, -100]
    assert [line.reference for line in standing(records, "2026-01-10").explanation] == [
        records[1].reference,
        records[2].reference,
    ]


# --- DESIGN 5.1: effective ------------------------------------------------------------


def test_a_record_counts_from_the_day_it_is_decided(effective, make_record):
    record = make_record("court.order_defiance", "2026-01-10")
    assert not effective(record, "2026-01-09")
    assert effective(record, "2026-01-10")


def test_a_record_counts_until_the_day_before_its_validity_ends(effective, standing, make_record):
    record = make_record("court.order_defiance", "2026-01-10")

    assert effective(record, "2028-01-09")
    assert not effective(record, "2028-01-10")
    assert standing([record], "2028-01-09").score == 900
    assert standing([record], "2028-01-10").score == 1000


def test_validity_clamps_to_the_month_end(effective, make_record):
    # P2Y from 29 Feb 2024 ends on 28 Feb 2026.
    record = make_record("court.order_defiance", "2024-02-29")
    assert effective(record, "2026-02-27")
    assert not effective(record, "2026-02-28")


def test_a_revoked_record_never_counts(effective, standing, make_record):
    record = make_record("court.order_defiance", "2026-01-10", revoked=True)

    for day in ("2026-01-10", "2026-06-01", "2028-01-09"):
        assert not effective(record, day)
    result = standing([record], "2026-06-01")
    assert (result.score, result.lists, result.explanation) == (1000, (), ())


def test_a_repair_ends_the_effect_early(effective, standing, make_record):
    record = make_record(
        "tax.arrears", "2026-01-10", authority="city-tax", repaired_on="2026-06-01"
    )

    assert effective(record, "2026-05-31")
    assert not effective(record, "2026-06-01")
    assert standing([record], "2026-05-31").explanation[0].effective_until == d("2026-06-01")
    assert standing([record], "2026-06-01").score == 1000


def test_a_repair_after_expiry_does_not_extend_the_effect(effective, standing, make_record):
    record = make_record(
        "tax.arrears", "2026-01-10", authority="city-tax", repaired_on="2027-06-01"
    )

    assert not effective(record, "2027-01-10")
    assert standing([record], "2026-05-31").explanation[0].effective_until == d("2027-01-10")


# --- DESIGN 5.1: objections -----------------------------------------------------------


def test_an_objection_suspends_a_disputed_category_from_filing_until_decision(
    effective, standing, make_record
):
    record = make_record(
        "court.order_defiance", "2026-01-10", disputes=[("2026-02-01", "2026-02-20")]
    )

    assert effective(record, "2026-01-31")
    assert not effective(record, "2026-02-01")
    assert not effective(record, "2026-02-19")
    assert effective(record, "2026-02-20")
    suspended = standing([record], "2026-02-10")
    assert (suspended.score, suspended.lists, suspended.explanation) == (1000, (), ())


def test_a_record_still_counts_under_objection_until_the_review_is_due(effective, make_record):
    # suspend_while_disputed = false; filed 1 Feb, due 30 days later (default): 3 Mar.
    record = make_record(
        "tax.arrears", "2026-01-10", authority="city-tax", disputes=[("2026-02-01", "2026-03-20")]
    )

    assert effective(record, "2026-02-01")
    assert effective(record, "2026-03-02")
    assert not effective(record, "2026-03-03")
    assert not effective(record, "2026-03-19")
    assert effective(record, "2026-03-20")


def test_an_objection_decided_in_time_never_suspends_an_undisputed_category(effective, make_record):
    record = make_record(
        "tax.arrears", "2026-01-10", authority="city-tax", disputes=[("2026-02-01", "2026-02-15")]
    )

    for day in ("2026-02-01", "2026-02-14", "2026-02-15", "2026-03-03", "2026-12-31"):
        assert effective(record, day)


def test_an_overdue_objection_suspends_the_record(standing, make_record):
    record = make_record(
        "tax.arrears", "2026-01-10", authority="city-tax", disputes=[("2026-02-01", None)]
    )

    assert standing([record], "2026-03-02").score == 940
    assert standing([record], "2026-03-03").score == 1000
    assert standing([record], "2027-01-09").score == 1000


def test_an_open_objection_suspends_a_disputed_category_until_it_expires(effective, make_record):
    record = make_record("court.order_defiance", "2026-01-10", disputes=[("2026-02-01", None)])

    assert effective(record, "2026-01-31")
    for day in ("2026-02-01", "2026-03-03", "2027-12-31"):
        assert not effective(record, day)


def test_the_objection_period_comes_from_the_policy(make_record):
    policy = load_policy(
        POLICY.replace("score_max = 2000", 'score_max = 2000\nobjection_period = "P10D"')
    )
    record = make_record(
        "tax.arrears", "2026-01-10", authority="city-tax", disputes=[("2026-02-01", None)]
    )
    category = policy.category_by_id["tax.arrears"]
    period = policy.policy.objection_period

    assert is_effective(record, category, period, d("2026-02-10"))
    assert not is_effective(record, category, period, d("2026-02-11"))


def test_any_one_of_several_objections_suspends(effective, make_record):
    record = make_record(
        "tax.arrears",
        "2026-01-10",
        authority="city-tax",
        disputes=[Dispute(d("2026-02-01"), d("2026-02-10")), Dispute(d("2026-04-01"), None)],
    )

    assert effective(record, "2026-03-10")
    assert effective(record, "2026-04-30")  # second one filed 1 Apr, due 1 May
    assert not effective(record, "2026-05-01")


# --- DESIGN 5.1: corrections ----------------------------------------------------------


def test_a_correction_replaces_the_record_from_the_day_of_its_decision(standing, make_record):
    old = make_record(
        "court.order_defiance", "2026-01-10", reference="X-1", counts_until="2026-04-01"
    )
    new = make_record("admin.warning", "2026-01-10", reference="X-1", counts_from="2026-04-01")

    before = standing([old, new], "2026-03-31")
    after = standing([old, new], "2026-04-01")

    assert [(line.category, line.points, line.effective_until) for line in before.explanation] == [
        ("court.order_defiance", -100, d("2026-04-01"))
    ]
    assert [(line.category, line.points, line.effective_until) for line in after.explanation] == [
        ("admin.warning", -100, d("2027-01-10"))
    ]
    assert before.lists == ("dishonest",)
    assert after.lists == ()


def test_a_corrected_version_still_ends_with_its_validity(effective, make_record):
    new = make_record("admin.warning", "2026-01-10", counts_from="2026-04-01")

    assert not effective(new, "2026-03-31")
    assert effective(new, "2027-01-09")
    assert not effective(new, "2027-01-10")


# --- DESIGN 5.3/5.4: score and grade --------------------------------------------------


def test_the_score_is_clamped_at_score_min(standing, make_record):
    records = [
        make_record("finance.fraud", f"2026-01-0{n}", authority="city-personnel") for n in (1, 2)
    ]

    result = standing(records, "2026-02-01")

    assert result.score == 0
    assert result.grade == "D"
    assert points_of(result) == [-700, -700]


def test_the_score_is_clamped_at_score_max(standing, make_record):
    records = [
        make_record("civic.medal", f"2026-01-0{n}", authority="city-personnel") for n in (1, 2)
    ]

    result = standing(records, "2026-02-01")

    assert result.score == 2000
    assert result.grade == "A"


@pytest.mark.parametrize(
    ("warnings", "volunteering", "score", "grade"),
    [(0, 3, 1060, "A"), (0, 0, 1000, "B"), (1, 0, 900, "C"), (1, 4, 980, "C"), (2, 0, 800, "D")],
)
def test_the_grade_is_the_first_band_whose_min_the_score_reaches(
    standing, make_record, warnings, volunteering, score, grade
):
    records = [
        make_record("admin.warning", "2026-01-01", authority="city-personnel")
        for _ in range(warnings)
    ]
    records += [
        make_record("civic.volunteering", "2026-01-01", authority="city-personnel")
        for _ in range(volunteering)
    ]

    result = standing(records, "2026-02-01")

    assert (result.score, result.grade) == (score, grade)


# --- DESIGN 5.5: lists and measures ---------------------------------------------------


def test_a_red_list_excludes_whoever_is_on_the_black_list(standing, make_record):
    awards = [
        make_record("civic.award", f"2026-01-0{n}", authority="city-personnel") for n in (1, 2, 3)
    ]
    defiance = make_record("court.order_defiance", "2026-01-05")

    assert standing(awards, "2026-02-01").lists == ("exemplary",)
    both = standing([*awards, defiance], "2026-02-01")
    assert (both.score, both.grade) == (1150, "A")
    assert both.lists == ("dishonest",)


def test_a_grade_puts_a_subject_on_a_list(standing, make_record):
    records = [
        make_record("tax.arrears", "2026-01-01", authority="city-tax", reference=f"T{n}")
        for n in range(4)
    ]

    result = standing(records, "2026-02-01")

    assert (result.score, result.grade, result.lists) == (760, "D", ("dishonest",))


def test_a_tax_default_cannot_trigger_a_training_measure(standing, make_record):
    records = [
        make_record("tax.arrears", "2026-01-01", authority="city-tax", reference=f"T{n}")
        for n in range(4)
    ]

    result = standing(records, "2026-02-01")

    assert result.grade == "D"
    assert "training.no_award" not in result.measures
    assert "hr.no_promotion" not in result.measures
    assert result.measures == ("tax.no_subsidy",)


def test_training_records_trigger_the_training_measure(standing, make_record):
    records = [make_record("training.failed", "2026-01-01", authority="city-personnel")]

    result = standing(records, "2026-02-01")

    assert (result.score, result.grade) == (850, "D")
    assert result.measures == ("training.no_award",)
    assert "dishonest" in result.lists  # the whole standing is D, but no judicial record


def test_a_measure_sees_only_its_contexts_even_for_list_triggers(standing, make_record):
    # On 'dishonest' by grade D from tax alone: the judicial/employment measure stays off.
    records = [
        make_record("tax.arrears", "2026-01-01", authority="city-tax", reference=f"T{n}")
        for n in range(4)
    ]
    records.append(make_record("court.order_defiance", "2024-01-01"))  # expired 2026-01-01

    result = standing(records, "2026-02-01")

    assert result.lists == ("dishonest",)
    assert "hr.no_promotion" not in result.measures


def test_measures_appear_in_policy_order(standing, make_record):
    records = [
        make_record("tax.arrears", "2026-01-01", authority="city-tax", reference=f"T{n}")
        for n in range(4)
    ]
    records.append(make_record("training.failed", "2026-01-01", authority="city-personnel"))
    records.append(make_record("court.order_defiance", "2026-01-01"))

    result = standing(list(reversed(records)), "2026-02-01")

    assert result.measures == ("tax.no_subsidy", "hr.no_promotion", "training.no_award")


# --- DESIGN 5.2/5.6: explanation ------------------------------------------------------


def test_the_explanation_is_ordered_by_decision_day_then_authority_then_reference(
    standing, make_record
):
    records = [
        make_record("civic.volunteering", "2026-01-02", authority="city-personnel", reference="A"),
        make_record("tax.arrears", "2026-01-01", authority="city-tax", reference="A"),
        make_record("admin.warning", "2026-01-01", authority="city-personnel", reference="B"),
        make_record("admin.warning", "2026-01-01", authority="city-personnel", reference="A"),
        make_record("court.order_defiance", "2026-01-01", reference="Z"),
    ]

    result = standing(records, "2026-02-01")

    assert [(line.authority, line.reference) for line in result.explanation] == [
        ("city-court", "Z"),
        ("city-personnel", "A"),
        ("city-personnel", "B"),
        ("city-tax", "A"),
        ("city-personnel", "A"),
    ]
    assert [line.category for line in result.explanation][-1] == "civic.volunteering"


def test_the_explanation_accounts_for_every_point(standing, make_record):
    records = [
        make_record("court.order_defiance", "2026-01-01"),
        make_record("court.order_defiance", "2026-01-02"),
        make_record("court.order_defiance", "2026-01-03"),
        make_record("civic.volunteering", "2026-01-04", authority="city-personnel"),
    ]

    result = standing(records, "2026-02-01")

    assert 1000 + sum(points_of(result)) == result.score == 820


def test_a_day_later_the_standing_can_change_without_new_records(standing, make_record):
    record = make_record("civic.volunteering", "2026-01-04", authority="city-personnel")
    last = d("2027-01-04") - timedelta(days=1)

    assert standing([record], last.isoformat()).score == 1020
    assert standing([record], "2027-01-04").score == 1000
