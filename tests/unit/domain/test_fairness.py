"""The fairness report on a small register whose figures are worked out by hand below."""

from __future__ import annotations

import json

import pytest

from credo.domain.errors import ValidationError
from credo.domain.fairness import FairnessRow, fairness
from credo.domain.policy import Policy
from credo.domain.policy_load import load_policy

POLICY = """
[policy]
id = "fair"
version = "1"
base_score = 1000
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
id = "hr"
name = "Personnel"
may_file = ["employment"]

[[categories]]
id = "employment.fault"
name = "Fault"
context = "employment"
points = -100
valid_for = "P1Y"

[[lists]]
id = "dishonest"
kind = "black"
name = "Dishonest"
when = [ { grade_in = ["D"] } ]

[[lists]]
id = "exemplary"
kind = "red"
name = "Exemplary"
when = [ { grade_in = ["A"] } ]

[[measures]]
id = "hr.no_promotion"
authority = "hr"
kind = "sanction"
trigger = { list = "dishonest" }
contexts = ["employment"]
text = "No promotion"

[[measures]]
id = "hr.watch"
authority = "hr"
kind = "sanction"
trigger = { grade_in = ["C", "D"] }
contexts = ["employment"]
text = "Watched"

[[measures]]
id = "hr.priority"
authority = "hr"
kind = "reward"
trigger = { list = "exemplary" }
contexts = ["employment"]
text = "Priority"
"""

# Overall: 10 subjects, 3 adverse (t1 on a black list; t2 and c4 under a sanction) = 0.3.
# Tax Bureau: 2 of 4 adverse = 0.5, ratio 0.5 / 0.3 = 5/3 > 1.25: flagged.
# Court: 1 of 4 = 0.25, ratio 0.25 / 0.3 = 5/6. No group: 0 of 2, ratio 0.
# t4's reward measure and red list are not adverse.
ROWS = [
    FairnessRow("t1", "Tax Bureau", 820, "D", ("dishonest",), ("hr.no_promotion", "hr.watch")),
    FairnessRow("t2", "Tax Bureau", 900, "C", (), ("hr.watch",)),
    FairnessRow("t3", "Tax Bureau", 1000, "B", (), ()),
    FairnessRow("t4", "Tax Bureau", 1060, "A", ("exemplary",), ("hr.priority",)),
    FairnessRow("c1", "Court", 1000, "B", (), ()),
    FairnessRow("c2", "Court", 1000, "B", (), ()),
    FairnessRow("c3", "Court", 1020, "B", (), ()),
    FairnessRow("c4", "Court", 880, "C", (), ("hr.watch",)),
    FairnessRow("n1", None, 1000, "B", (), ()),
    FairnessRow("n2", "  ", 1000, "B", (), ()),
]


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy(POLICY, "test")


def test_groups_are_sorted_with_the_missing_attribute_last(policy: Policy) -> None:
    report = fairness(ROWS, policy, by="organisation")
    assert [g.group for g in report.groups] == ["Court", "Tax Bureau", "(none)"]
    assert [g.subjects for g in report.groups] == [4, 4, 2]
    assert report.overall.subjects == 10


def test_mean_and_median_scores_per_group(policy: Policy) -> None:
    report = fairness(ROWS, policy, by="organisation")
    tax, court, none = report.group("Tax Bureau"), report.group("Court"), report.group("(none)")
    assert (tax.mean_score, tax.median_score) == (945.0, 950.0)  # 3780 / 4; (900 + 1000) / 2
    assert (court.mean_score, court.median_score) == (975.0, 1000.0)  # 3900 / 4
    assert (none.mean_score, none.median_score) == (1000.0, 1000.0)
    assert (report.overall.mean_score, report.overall.median_score) == (968.0, 1000.0)


def test_shares_of_grades_lists_and_measures(policy: Policy) -> None:
    report = fairness(ROWS, policy, by="organisation")
    tax, court = report.group("Tax Bureau"), report.group("Court")
    assert tax.grades == {"A": 0.25, "B": 0.25, "C": 0.25, "D": 0.25}
    assert court.grades == {"A": 0.0, "B": 0.75, "C": 0.25, "D": 0.0}
    assert report.overall.grades == {"A": 0.1, "B": 0.6, "C": 0.2, "D": 0.1}
    assert tax.lists == {"dishonest": 0.25, "exemplary": 0.25}
    assert tax.measures == {"hr.no_promotion": 0.25, "hr.watch": 0.5, "hr.priority": 0.25}
    assert report.overall.measures["hr.watch"] == 0.3


def test_adverse_rates_ratios_and_the_four_fifths_flag(policy: Policy) -> None:
    report = fairness(ROWS, policy, by="organisation")
    tax, court, none = report.group("Tax Bureau"), report.group("Court"), report.group("(none)")
    assert report.overall.adverse == 3
    assert report.overall.adverse_rate == pytest.approx(0.3)
    assert (tax.adverse, tax.adverse_rate) == (2, 0.5)
    assert tax.ratio == pytest.approx(5 / 3)
    assert court.ratio == pytest.approx(5 / 6)
    assert none.ratio == 0.0
    assert report.limit == pytest.approx(1.25)
    assert report.flagged == ["Tax Bureau"]
    assert [tax.flagged, court.flagged, none.flagged] == [True, False, False]


def test_a_ratio_of_exactly_one_and_a_quarter_is_not_flagged(policy: Policy) -> None:
    # X: 1 of 2 adverse (0.5); Y: 1 of 3; overall 2 of 5 = 0.4; X's ratio is 0.5 / 0.4 = 1.25.
    rows = [
        FairnessRow("x1", "X", 880, "C", (), ("hr.watch",)),
        FairnessRow("x2", "X", 1000, "B", (), ()),
        FairnessRow("y1", "Y", 880, "C", (), ("hr.watch",)),
        FairnessRow("y2", "Y", 1000, "B", (), ()),
        FairnessRow("y3", "Y", 1000, "B", (), ()),
    ]
    default = fairness(rows, policy, by="position")
    assert default.group("X").ratio == pytest.approx(1.25)
    assert default.flagged == []
    stricter = fairness(rows, policy, by="position", threshold=0.9)  # limit 1/0.9 = 1.11
    assert stricter.flagged == ["X"]


def test_no_adverse_outcome_anywhere_gives_no_ratio(policy: Policy) -> None:
    rows = [FairnessRow("a", "X", 1000, "B", (), ()), FairnessRow("b", "Y", 1060, "A", (), ())]
    report = fairness(rows, policy, by="kind")
    assert report.overall.adverse_rate == 0.0
    assert [g.ratio for g in report.groups] == [None, None]
    assert report.flagged == []


def test_an_empty_register_reports_zero_subjects(policy: Policy) -> None:
    report = fairness([], policy, by="kind")
    assert report.groups == ()
    assert report.overall.subjects == 0
    assert report.overall.mean_score is None and report.overall.adverse_rate is None


@pytest.mark.parametrize("threshold", [0.0, -0.5, 1.5])
def test_a_threshold_outside_0_to_1_is_refused_naming_it(policy: Policy, threshold: float) -> None:
    with pytest.raises(ValidationError) as caught:
        fairness(ROWS, policy, by="organisation", threshold=threshold)
    assert [p.location for p in caught.value.problems] == ["threshold"]


def test_the_report_serialises_to_json(policy: Policy) -> None:
    data = json.loads(json.dumps(fairness(ROWS, policy, by="organisation").to_json()))
    assert data["policy"] == "fair@1" and data["by"] == "organisation"
    assert data["threshold"] == 0.8 and data["flagged"] == ["Tax Bureau"]
    assert data["overall"]["subjects"] == 10
    assert [g["group"] for g in data["groups"]] == ["Court", "Tax Bureau", "(none)"]
    assert data["groups"][1]["lists"] == {"dishonest": 0.25, "exemplary": 0.25}
