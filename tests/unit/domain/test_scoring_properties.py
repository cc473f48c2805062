"""Properties of the scorer (DESIGN 5) over random registers of a small policy."""

from __future__ import annotations

import random
from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from credo.domain.policy_load import load_policy
from credo.domain.records import Dispute, RecordFacts
from credo.domain.scoring import compute_standing

# Tight bounds so that the clamp binds now and then; month-based validities so that
# calendar clamping is exercised; one category of each cap and dispute kind.
POLICY = load_policy("""
[policy]
id = "prop"
version = "1"
base_score = 60
score_min = 0
score_max = 120
objection_period = "P20D"

[[grades]]
name = "A"
min = 100
[[grades]]
name = "B"
min = 60
[[grades]]
name = "C"
min = 30
[[grades]]
name = "D"
min = 0

[[authorities]]
id = "court"
name = "Court"
may_file = ["judicial", "tax", "civic", "training"]
[[authorities]]
id = "tax"
name = "Tax"
may_file = ["tax"]
[[authorities]]
id = "hr"
name = "HR"
may_file = ["civic", "training"]

[[categories]]
id = "judicial.defiance"
name = "Defiance"
context = "judicial"
points = -40
valid_for = "P1Y"
cap = -100

[[categories]]
id = "tax.arrears"
name = "Arrears"
context = "tax"
points = -25
valid_for = "P3M10D"
suspend_while_disputed = false

[[categories]]
id = "civic.award"
name = "Award"
context = "civic"
points = 40
valid_for = "P2M"
cap = 90

[[categories]]
id = "training.completed"
name = "Training completed"
context = "training"
points = 15
valid_for = "P45D"

[[lists]]
id = "dishonest"
kind = "black"
name = "Dishonest"
when = [ { any_of = ["judicial.defiance"] }, { grade_in = ["D"] } ]

[[lists]]
id = "exemplary"
kind = "red"
name = "Exemplary"
when = [ { grade_in = ["A"] } ]
excludes = ["dishonest"]

[[measures]]
id = "no_promotion"
authority = "hr"
kind = "sanction"
trigger = { list = "dishonest" }
contexts = ["judicial"]
text = "No promotion"

[[measures]]
id = "bonus"
authority = "hr"
kind = "reward"
trigger = { grade_in = ["A"] }
contexts = ["civic", "training"]
text = "Bonus"
""")

CATEGORIES = POLICY.category_by_id
HEADER = POLICY.policy
# One (leap) year of decisions, so records overlap and the caps and the clamp bind.
START = date(2024, 1, 1)
END = date(2024, 12, 31)
PROPERTY = settings(max_examples=150, deadline=None)


def days(low: date, high: date) -> st.SearchStrategy[date]:
    return st.integers(0, (high - low).days).map(lambda n: low + timedelta(days=n))


# Strategies are built once here (building them inside a draw is slow); dates are drawn
# as day offsets from START and turned into records by `_record`.
_LATER = st.none() | st.integers(0, 500)
_DISPUTE = st.tuples(st.integers(0, 200), st.none() | st.integers(1, 120))
_COMPLICATIONS = st.tuples(
    st.booleans(),  # revoked
    _LATER,  # repaired
    st.lists(_DISPUTE, max_size=2),
    _LATER,  # counts_from
    _LATER,  # counts_until
)
_RECORD = st.tuples(
    st.sampled_from(["court", "tax", "hr"]),
    st.sampled_from(sorted(CATEGORIES)),
    # A busy season around 29 Feb, with some decisions on the same day, so that the caps,
    # the clamp and the tie-breaks are exercised.
    st.integers(0, (END - START).days) | st.integers(40, 80) | st.sampled_from([58, 59, 60]),
    # One record in four has a revocation, repair, objection or correction window.
    st.integers(0, 3).flatmap(lambda n: _COMPLICATIONS if n == 0 else st.none()),
)


def _later(start: date, offset: int | None) -> date | None:
    return None if offset is None else start + timedelta(days=offset)


def _record(index: int, drawn: tuple, plain: bool) -> RecordFacts:
    authority, category, day, complications = drawn
    decided = START + timedelta(days=day)
    extra: dict = {}
    if complications is not None and not plain:
        revoked, repaired, disputes, since, until = complications
        extra = {
            "revoked": revoked,
            "repaired_on": _later(decided, repaired),
            "disputes": tuple(
                Dispute(
                    filed_on=(filed := decided + timedelta(days=f)), decided_on=_later(filed, x)
                )
                for f, x in disputes
            ),
            "counts_from": _later(decided, since),
            "counts_until": _later(decided, until),
        }
    return RecordFacts(
        authority=authority,
        reference=f"R{index:02d}",
        category=category,
        decided_on=decided,
        **extra,
    )


_SIZED = {n: st.lists(_RECORD, min_size=n, max_size=n) for n in range(17)}


def registers(plain: bool = False) -> st.SearchStrategy[list[RecordFacts]]:
    """Up to 16 records with unique (authority, reference); `plain` ones have no
    revocation, repair, objection or correction window."""
    # An explicit size: hypothesis's own list sizes stay too small for registers to overlap.
    sized = st.integers(0, 16).flatmap(_SIZED.__getitem__)
    return sized.map(lambda drawn: [_record(i, one, plain) for i, one in enumerate(drawn)])


AS_OF = days(START - timedelta(days=10), END + timedelta(days=120)) | days(
    date(2024, 2, 20), date(2024, 4, 20)
)


def standing(records, as_of):
    return compute_standing(POLICY, "s-1", records, as_of)


def end_of(record: RecordFacts) -> date:
    return CATEGORIES[record.category].valid_for.add_to(record.decided_on)


def by_key(records):
    return {(r.authority, r.reference): r for r in records}


@PROPERTY
@given(registers(), AS_OF)
def test_the_score_stays_within_its_bounds(records, as_of):
    assert HEADER.score_min <= standing(records, as_of).score <= HEADER.score_max


@PROPERTY
@given(registers(), AS_OF, st.randoms(use_true_random=False))
def test_the_order_records_come_in_does_not_matter(records, as_of, rnd: random.Random):
    shuffled = list(records)
    rnd.shuffle(shuffled)
    assert standing(shuffled, as_of).to_json() == standing(records, as_of).to_json()


@PROPERTY
@given(registers(), AS_OF)
def test_each_category_counts_its_points_clamped_at_its_cap(records, as_of):
    result = standing(records, as_of)

    for category in POLICY.categories:
        lines = [line for line in result.explanation if line.category == category.id]
        total = sum(line.points for line in lines)
        expected = len(lines) * category.points
        if category.cap is not None:
            expected = (
                max(expected, category.cap) if category.cap < 0 else min(expected, category.cap)
            )
            assert abs(total) <= abs(category.cap)
        assert total == expected
        assert all(line.capped == (line.points != category.points) for line in lines)


@PROPERTY
@given(registers(), AS_OF)
def test_the_explanation_accounts_for_the_score(records, as_of):
    result = standing(records, as_of)
    raw = HEADER.base_score + sum(line.points for line in result.explanation)

    if HEADER.score_min <= raw <= HEADER.score_max:
        assert result.score == raw
    else:
        assert result.score == (HEADER.score_min if raw < HEADER.score_min else HEADER.score_max)


@PROPERTY
@given(registers(), AS_OF)
def test_every_explained_record_is_decided_and_still_in_force(records, as_of):
    result = standing(records, as_of)
    known = by_key(records)

    for line in result.explanation:
        record = known[(line.authority, line.reference)]
        assert record.decided_on <= as_of < line.effective_until
        assert line.effective_until <= end_of(record)
        assert line.category == record.category
        assert not record.revoked


@PROPERTY
@given(registers(plain=True), AS_OF)
def test_a_plain_record_is_explained_exactly_on_the_days_of_its_validity(records, as_of):
    explained = {(line.authority, line.reference) for line in standing(records, as_of).explanation}

    for record in records:
        in_force = record.decided_on <= as_of < end_of(record)
        assert ((record.authority, record.reference) in explained) is in_force


@PROPERTY
@given(registers(), AS_OF)
def test_a_record_is_never_explained_outside_its_validity(records, as_of):
    explained = {(line.authority, line.reference) for line in standing(records, as_of).explanation}

    for record in records:
        if not record.decided_on <= as_of < end_of(record):
            assert (record.authority, record.reference) not in explained


@PROPERTY
@given(registers(), st.integers(0, 400))
def test_past_every_end_date_the_base_score_is_back(records, later):
    last_end = max((end_of(r) for r in records), default=END)
    result = standing(records, last_end + timedelta(days=later))

    assert (result.score, result.grade, result.explanation) == (HEADER.base_score, "B", ())
    assert (result.lists, result.measures) == ((), ())


@PROPERTY
@given(registers(), AS_OF)
def test_the_explanation_is_sorted_by_decision_day_authority_and_reference(records, as_of):
    known = by_key(records)
    keys = [
        (known[(line.authority, line.reference)].decided_on, line.authority, line.reference)
        for line in standing(records, as_of).explanation
    ]
    assert keys == sorted(keys)


@PROPERTY
@given(registers(), AS_OF)
def test_the_grade_and_lists_follow_from_the_score_and_records(records, as_of):
    result = standing(records, as_of)

    expected_grade = next(g.name for g in POLICY.grades if g.min <= result.score)
    assert result.grade == expected_grade
    dishonest = result.grade == "D" or any(
        line.category == "judicial.defiance" for line in result.explanation
    )
    assert ("dishonest" in result.lists) is dishonest
    assert ("exemplary" in result.lists) is (result.grade == "A" and not dishonest)


@PROPERTY
@given(registers(), AS_OF, st.sampled_from(["judicial.defiance", "tax.arrears"]))
def test_filing_a_negative_record_never_raises_the_score(records, as_of, category):
    worse = [
        *records,
        RecordFacts(authority="court", reference="NEW", category=category, decided_on=as_of),
    ]

    assert standing(worse, as_of).score <= standing(records, as_of).score


@PROPERTY
@given(registers(), AS_OF)
def test_a_revoked_record_changes_nothing(records, as_of):
    revoked = RecordFacts(
        authority="court",
        reference="REVOKED",
        category="judicial.defiance",
        decided_on=as_of,
        revoked=True,
    )

    assert standing([*records, revoked], as_of) == standing(records, as_of)


@PROPERTY
@given(registers(), AS_OF, st.sets(st.sampled_from([m.id for m in POLICY.measures])))
def test_judging_some_measures_gives_exactly_those_of_the_full_standing(records, as_of, chosen):
    some = [m for m in POLICY.measures if m.id in chosen]
    full = standing(records, as_of)
    part = compute_standing(POLICY, "s-1", records, as_of, measures=some)
    assert part.measures == tuple(m for m in full.measures if m in chosen)
    assert (part.score, part.grade, part.lists, part.explanation) == (
        full.score,
        full.grade,
        full.lists,
        full.explanation,
    )
