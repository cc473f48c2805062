"""Project every subject's standing forward with no new records (research use).

A standing only changes on a day when a record stops (or starts) counting or an objection
falls due or is decided, so the pure scorer runs on those event days alone, never day by
day. Nothing is stored: the simulation reads the register in one read transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import text

from credo.domain.durations import Duration
from credo.domain.errors import Problem, ValidationError
from credo.domain.policy import Policy
from credo.domain.policy_load import load_policy
from credo.domain.records import RecordFacts, ends_on
from credo.domain.scoring import Standing, compute_standing
from credo.services.register import Register
from credo.store.repository import record_facts

MAX_YEARS = 10  # every record ends within 10 years (DESIGN 2): nothing changes later


@dataclass(frozen=True, slots=True)
class Change:
    """What changed for one subject on one day."""

    day: date
    score: int
    grade: str
    entered: tuple[str, ...]
    left: tuple[str, ...]
    started: tuple[str, ...]
    ended: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """The day, the new score and grade, and the lists and measures gained or lost."""
        return {
            "day": self.day.isoformat(),
            "score": self.score,
            "grade": self.grade,
            "entered": list(self.entered),
            "left": list(self.left),
            "measures_started": list(self.started),
            "measures_ended": list(self.ended),
        }


@dataclass(frozen=True, slots=True)
class Timeline:
    """One subject's standing at the start and every change after it."""

    start: Standing
    changes: tuple[Change, ...]

    def to_json(self) -> dict[str, Any]:
        """{"subject_id", "now": {score, grade, lists, measures}, "changes": [...]}."""
        s = self.start
        return {
            "subject_id": s.subject_id,
            "now": {
                "score": s.score,
                "grade": s.grade,
                "lists": list(s.lists),
                "measures": list(s.measures),
            },
            "changes": [c.to_json() for c in self.changes],
        }


@dataclass
class Flow:
    """Members of one list (or subjects under one measure): now, at the end, and the
    leavers and joiners per period."""

    now: int = 0
    end: int = 0
    left: dict[str, int] = field(default_factory=dict)
    entered: dict[str, int] = field(default_factory=dict)

    def to_json(self, periods: list[str]) -> dict[str, Any]:
        """Counts per period, every period present (0 when nothing happened)."""
        return {
            "now": self.now,
            "at_end": self.end,
            "left": {p: self.left.get(p, 0) for p in periods},
            "entered": {p: self.entered.get(p, 0) for p in periods},
        }


@dataclass
class Simulation:
    """The projection: per-list and per-measure flows, and the subjects whose standing moves."""

    policy: str
    start: date
    until: date
    period: str  # year | month
    subjects: int
    lists: dict[str, Flow]
    measures: dict[str, Flow]
    timelines: list[Timeline]

    def periods(self) -> list[str]:
        """Every period label from the start to the end (`2026` or `2026-04`)."""
        labels: list[str] = []
        day = self.start
        while day <= self.until:
            label = period_of(day, self.period)
            if label not in labels:
                labels.append(label)
            day = Duration(months=1, days=0).add_to(day.replace(day=1))
        if period_of(self.until, self.period) not in labels:
            labels.append(period_of(self.until, self.period))
        return labels

    def to_json(self) -> dict[str, Any]:
        """The summary and every subject's timeline (subjects that never change are left out)."""
        periods = self.periods()
        return {
            "policy": self.policy,
            "from": self.start.isoformat(),
            "until": self.until.isoformat(),
            "period": self.period,
            "subjects": self.subjects,
            "lists": {k: v.to_json(periods) for k, v in self.lists.items()},
            "measures": {k: v.to_json(periods) for k, v in self.measures.items()},
            "timelines": [t.to_json() for t in self.timelines],
        }


def period_of(day: date, period: str) -> str:
    """`2026` (year) or `2026-04` (month)."""
    return f"{day.year}" if period == "year" else f"{day.year}-{day.month:02d}"


def event_days(
    policy: Policy, facts: Iterable[RecordFacts], after: date, until: date
) -> list[date]:
    """The days in (after, until] on which the subject's standing can change, in order."""
    period = policy.policy.objection_period
    days: set[date] = set()
    for record in facts:
        category = policy.category_by_id.get(record.category)
        if category is None or record.revoked:
            continue
        days.add(ends_on(record, category))
        days.add(max(record.decided_on, record.counts_from or record.decided_on))
        for dispute in record.disputes:
            days.add(dispute.filed_on)
            days.add(period.add_to(dispute.filed_on))
            if dispute.decided_on is not None:
                days.add(dispute.decided_on)
    return sorted(d for d in days if after < d <= until)


def project(
    policy: Policy, subject_id: str, facts: list[RecordFacts], start: date, until: date
) -> Timeline:
    """One subject's standing on `start` and on each later event day up to `until`."""
    first = compute_standing(policy, subject_id, facts, start)
    changes: list[Change] = []
    before = first
    for day in event_days(policy, facts, start, until):
        after = compute_standing(policy, subject_id, facts, day)
        if (after.score, after.grade, after.lists, after.measures) == (
            before.score,
            before.grade,
            before.lists,
            before.measures,
        ):
            continue
        changes.append(
            Change(
                day=day,
                score=after.score,
                grade=after.grade,
                entered=tuple(x for x in after.lists if x not in before.lists),
                left=tuple(x for x in before.lists if x not in after.lists),
                started=tuple(x for x in after.measures if x not in before.measures),
                ended=tuple(x for x in before.measures if x not in after.measures),
            )
        )
        before = after
    return Timeline(first, tuple(changes))


def _count(flows: dict[str, Flow], timeline: Timeline, period: str, lists: bool) -> None:
    start = timeline.start.lists if lists else timeline.start.measures
    current = set(start)
    for name in start:
        flows[name].now += 1
    for change in timeline.changes:
        label = period_of(change.day, period)
        for name in change.left if lists else change.ended:
            flows[name].left[label] = flows[name].left.get(label, 0) + 1
            current.discard(name)
        for name in change.entered if lists else change.started:
            flows[name].entered[label] = flows[name].entered.get(label, 0) + 1
            current.add(name)
    for name in current:
        flows[name].end += 1


def simulate(
    register: Register,
    policy_text: str | None,
    *,
    years: int,
    start: date | None = None,
    period: str = "year",
    source: str = "policy",
    on_progress: Callable[[int, int], object] | None = None,
) -> Simulation:
    """Project every subject `years` ahead under a policy (default: the active one).

    >>> simulate(register, None, years=2).lists["dishonest"].left
    {'2027': 12, '2028': 3}
    """
    problems = []
    if not 1 <= years <= MAX_YEARS:
        problems.append(
            Problem("years", f"must be 1 to {MAX_YEARS}: every record ends within 10 years")
        )
    if period not in ("year", "month"):
        problems.append(Problem("period", "must be 'year' or 'month'"))
    if problems:
        raise ValidationError("cannot run this simulation", problems)
    with register.read() as conn:
        if policy_text is None:
            policy = register.active_policy(conn)[1]
        else:
            policy = load_policy(policy_text, source)
        day = start or register.clock.today()
        until = Duration(months=12 * years, days=0).add_to(day)
        subject_ids = list(conn.execute(text("SELECT id FROM subjects ORDER BY id")).scalars())
        with_records = set(conn.execute(text("SELECT DISTINCT subject_id FROM records")).scalars())
        lists = {rule.id: Flow() for rule in policy.lists}
        measures = {m.id: Flow() for m in policy.measures}
        timelines: list[Timeline] = []
        blank: Timeline | None = None
        for n, subject_id in enumerate(subject_ids, 1):
            if subject_id in with_records:
                timeline = project(policy, subject_id, record_facts(conn, subject_id), day, until)
            else:  # no records: the base standing, the same for everyone, all along
                blank = blank or project(policy, subject_id, [], day, until)
                timeline = blank
            _count(lists, timeline, period, lists=True)
            _count(measures, timeline, period, lists=False)
            if timeline.changes:
                timelines.append(timeline)
            if on_progress is not None and (n % 1000 == 0 or n == len(subject_ids)):
                on_progress(n, len(subject_ids))
    return Simulation(
        policy=policy.label,
        start=day,
        until=until,
        period=period,
        subjects=len(subject_ids),
        lists=lists,
        measures=measures,
        timelines=timelines,
    )
