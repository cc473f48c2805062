"""DESIGN section 5 as a pure function: policy, a subject's records and a day in, standing out."""

from __future__ import annotations

from collections.abc import Iterable, Sequence, Set
from dataclasses import dataclass
from datetime import date
from typing import Any

from credo.domain.guard import Context
from credo.domain.policy import AnyOf, ListTrigger, Measure, Policy
from credo.domain.records import RecordFacts, ends_on, is_effective


@dataclass(frozen=True, slots=True)
class ExplanationLine:
    """One effective record and what it counted."""

    authority: str
    reference: str
    category: str
    points: int
    effective_until: date
    capped: bool

    def to_json(self) -> dict[str, Any]:
        """The explanation item of DESIGN 4.3."""
        return {
            "authority": self.authority,
            "reference": self.reference,
            "category": self.category,
            "points": self.points,
            "effective_until": self.effective_until.isoformat(),
            "capped": self.capped,
        }


@dataclass(frozen=True, slots=True)
class Standing:
    """A subject's computed state as of a day."""

    subject_id: str
    as_of: date
    policy: str
    score: int
    grade: str
    lists: tuple[str, ...]
    measures: tuple[str, ...]
    explanation: tuple[ExplanationLine, ...]

    @property
    def next_end(self) -> date | None:
        """The first day after `as_of` on which a record it counts stops counting (the day
        it can next change by itself), or None when no record counts."""
        return min((line.effective_until for line in self.explanation), default=None)

    def to_json(self) -> dict[str, Any]:
        """The standing object of DESIGN 4.3, keys in contract order."""
        return {
            "subject_id": self.subject_id,
            "as_of": self.as_of.isoformat(),
            "policy": self.policy,
            "score": self.score,
            "grade": self.grade,
            "lists": list(self.lists),
            "measures": list(self.measures),
            "explanation": [line.to_json() for line in self.explanation],
        }


@dataclass(frozen=True, slots=True)
class Tally:
    """Score, grade and list memberships from one set of effective records."""

    score: int
    grade: str
    lists: tuple[str, ...]
    explanation: tuple[ExplanationLine, ...]


def effective_records(
    policy: Policy, records: Iterable[RecordFacts], day: date
) -> list[RecordFacts]:
    """The records that count on `day`, in the order of DESIGN 5.2."""
    categories = policy.category_by_id
    period = policy.policy.objection_period
    chosen = [
        r
        for r in records
        if r.category in categories and is_effective(r, categories[r.category], period, day)
    ]
    chosen.sort(key=RecordFacts.sort_key)
    return chosen


def tally(policy: Policy, effective: Sequence[RecordFacts]) -> Tally:
    """Points with caps, score, grade and lists from effective records (already ordered)."""
    categories = policy.category_by_id
    running: dict[str, int] = {}
    lines: list[ExplanationLine] = []
    for record in effective:
        category = categories[record.category]
        so_far = running.get(category.id, 0)
        counted = category.points
        if category.cap is not None:
            room = category.cap - so_far
            counted = max(counted, room) if category.cap < 0 else min(counted, room)
        running[category.id] = so_far + counted
        lines.append(
            ExplanationLine(
                authority=record.authority,
                reference=record.reference,
                category=record.category,
                points=counted,
                effective_until=ends_on(record, category),
                capped=counted != category.points,
            )
        )
    score, grade, lists = _judge(policy, sum(running.values()), {r.category for r in effective})
    return Tally(score=score, grade=grade, lists=lists, explanation=tuple(lines))


def _judge(policy: Policy, points: int, present: Set[str]) -> tuple[int, str, tuple[str, ...]]:
    """Score, grade and lists from the capped points and the categories that count."""
    header = policy.policy
    score = min(max(header.base_score + points, header.score_min), header.score_max)
    grade = next((g.name for g in policy.grades if g.min <= score), policy.grades[-1].name)
    on: dict[str, bool] = {}
    for rule in policy.lists_in_evaluation_order:
        holds = any(
            not present.isdisjoint(cond.any_of)
            if isinstance(cond, AnyOf)
            else grade in cond.grade_in
            for cond in rule.when
        )
        on[rule.id] = holds and not any(on[other] for other in rule.excludes)
    return score, grade, tuple(rule.id for rule in policy.lists if on[rule.id])


def _capped(points: int, cap: int | None, count: int) -> int:
    """`count` records of a category together: n x points, held at the cap (DESIGN 5.3)."""
    total = count * points
    if cap is None:
        return total
    return max(total, cap) if cap < 0 else min(total, cap)


def restricted(
    policy: Policy, effective: Sequence[RecordFacts], contexts: Iterable[Context]
) -> list[RecordFacts]:
    """Only the records whose category belongs to one of `contexts` (DESIGN 5.5)."""
    allowed = set(contexts)
    categories = policy.category_by_id
    return [r for r in effective if categories[r.category].context in allowed]


def applicable_measures(
    policy: Policy, effective: Sequence[RecordFacts], measures: Iterable[Measure] | None = None
) -> tuple[str, ...]:
    """Every measure whose trigger holds on the standing of its own contexts alone (of
    `measures` only, when given: a subset of the policy's, in the policy's order).

    The standing of a set of contexts depends only on which of the subject's categories
    fall in it and how many of their records count (the points of a category depend only
    on that count), so each distinct set of such categories is judged once: most measures'
    contexts hold none or the same few of a person's categories.
    """
    categories = policy.category_by_id
    counts: dict[str, int] = {}
    for record in effective:
        counts[record.category] = counts.get(record.category, 0) + 1
    applied: list[str] = []
    by_contexts: dict[frozenset[Context], tuple[str, tuple[str, ...]]] = {}
    by_present: dict[frozenset[str], tuple[str, tuple[str, ...]]] = {}
    for measure in policy.measures if measures is None else measures:
        key = frozenset(measure.contexts)
        if key not in by_contexts:
            present = frozenset(c for c in counts if categories[c].context in key)
            if present not in by_present:
                points = sum(
                    _capped(categories[c].points, categories[c].cap, counts[c]) for c in present
                )
                _, grade, lists = _judge(policy, points, present)
                by_present[present] = (grade, lists)
            by_contexts[key] = by_present[present]
        grade, lists = by_contexts[key]
        trigger = measure.trigger
        holds = (
            trigger.list in lists if isinstance(trigger, ListTrigger) else grade in trigger.grade_in
        )
        if holds:
            applied.append(measure.id)
    return tuple(applied)


def compute_standing(
    policy: Policy,
    subject_id: str,
    records: Iterable[RecordFacts],
    as_of: date,
    *,
    measures: Iterable[Measure] | None = None,
) -> Standing:
    """The standing of one subject on one day (of `measures` only, when given: the measures
    an asker may see, say; by default every measure of the policy).

    >>> compute_standing(policy, "s-001", [], date(2026, 3, 15)).score == policy.policy.base_score
    True
    """
    effective = effective_records(policy, records, as_of)
    whole = tally(policy, effective)
    return Standing(
        subject_id=subject_id,
        as_of=as_of,
        policy=policy.label,
        score=whole.score,
        grade=whole.grade,
        lists=whole.lists,
        measures=applicable_measures(policy, effective, measures),
        explanation=whole.explanation,
    )
