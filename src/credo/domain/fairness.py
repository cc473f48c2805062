"""The fairness report: how standings fall on groups the register already holds.

Groups are an attribute already on file (organisation, position or kind); nothing is
collected for this report, and no protected attribute is asked for.

The adverse outcome is being on any black list or under any measure of kind "sanction".
Each group's adverse rate is compared with the overall rate. The four-fifths rule (US
EEOC, 29 CFR 1607.4(D)) flags a group whose *selection* rate is below 4/5 of the
reference; credo reports outcomes that harm, so the rule is applied to the mirror image:
a group is flagged when its adverse rate exceeds the overall rate by more than
1 / threshold (1.25 at the default 0.8). The reference is the overall rate rather than the
best-off group, so that one tiny group cannot set the bar for everyone; a group is only a
signal to look closer, not a finding, and small groups swing widely.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from statistics import median
from typing import Any, NamedTuple

from credo.domain.errors import Problem, ValidationError
from credo.domain.policy import ListKind, MeasureKind, Policy

NO_GROUP = "(none)"


class FairnessRow(NamedTuple):
    """One subject's standing and the group it falls in (None: the attribute is missing)."""

    subject_id: str
    group: str | None
    score: int
    grade: str
    lists: tuple[str, ...]
    measures: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GroupFigures:
    """The figures of one group (or of everyone: the overall row)."""

    group: str
    subjects: int
    mean_score: float | None
    median_score: float | None
    grades: dict[str, float]
    lists: dict[str, float]
    measures: dict[str, float]
    adverse: int
    adverse_rate: float | None
    ratio: float | None
    flagged: bool

    def to_json(self) -> dict[str, Any]:
        """Shares are fractions of the group's subjects (0..1)."""
        return {
            "group": self.group,
            "subjects": self.subjects,
            "mean_score": self.mean_score,
            "median_score": self.median_score,
            "grades": self.grades,
            "lists": self.lists,
            "measures": self.measures,
            "adverse": self.adverse,
            "adverse_rate": self.adverse_rate,
            "ratio": self.ratio,
            "flagged": self.flagged,
        }


@dataclass(frozen=True, slots=True)
class FairnessReport:
    """Per-group figures, the overall row, and the rule used to flag groups."""

    policy: str
    by: str
    threshold: float
    overall: GroupFigures
    groups: tuple[GroupFigures, ...]

    @property
    def limit(self) -> float:
        """The adverse-rate ratio above which a group is flagged (1 / threshold)."""
        return 1 / self.threshold

    @property
    def flagged(self) -> list[str]:
        """The groups beyond the limit."""
        return [g.group for g in self.groups if g.flagged]

    def group(self, name: str) -> GroupFigures:
        """One group's figures by name (KeyError when absent)."""
        for figures in self.groups:
            if figures.group == name:
                return figures
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        """The whole report as JSON-ready data."""
        return {
            "policy": self.policy,
            "by": self.by,
            "threshold": self.threshold,
            "ratio_limit": self.limit,
            "adverse": "on a black list or under a sanction measure",
            "overall": self.overall.to_json(),
            "groups": [g.to_json() for g in self.groups],
            "flagged": self.flagged,
        }


def adverse_outcome(policy: Policy) -> Callable[[Iterable[str], Iterable[str]], bool]:
    """A test of (lists, measures): on any black list or under any sanction measure."""
    black = frozenset(r.id for r in policy.lists if r.kind is ListKind.BLACK)
    sanctions = frozenset(m.id for m in policy.measures if m.kind is MeasureKind.SANCTION)

    def adverse(lists: Iterable[str], measures: Iterable[str]) -> bool:
        return not black.isdisjoint(lists) or not sanctions.isdisjoint(measures)

    return adverse


class _Tally:
    def __init__(self) -> None:
        self.scores: list[int] = []
        self.grades: dict[str, int] = {}
        self.lists: dict[str, int] = {}
        self.measures: dict[str, int] = {}
        self.adverse = 0

    def add(self, row: FairnessRow, adverse: bool) -> None:
        self.scores.append(row.score)
        self.grades[row.grade] = self.grades.get(row.grade, 0) + 1
        for name in row.lists:
            self.lists[name] = self.lists.get(name, 0) + 1
        for name in row.measures:
            self.measures[name] = self.measures.get(name, 0) + 1
        self.adverse += adverse

    def figures(
        self, group: str, policy: Policy, overall_rate: float | None, threshold: float
    ) -> GroupFigures:
        n = len(self.scores)

        def share(count: int) -> float:
            return count / n if n else 0.0

        rate = self.adverse / n if n else None
        ratio = rate / overall_rate if rate is not None and overall_rate else None
        return GroupFigures(
            group=group,
            subjects=n,
            mean_score=sum(self.scores) / n if n else None,
            median_score=float(median(self.scores)) if n else None,
            grades={g.name: share(self.grades.get(g.name, 0)) for g in policy.grades},
            lists={r.id: share(self.lists.get(r.id, 0)) for r in policy.lists},
            measures={m.id: share(self.measures.get(m.id, 0)) for m in policy.measures},
            adverse=self.adverse,
            adverse_rate=rate,
            ratio=ratio,
            # ratio > 1/threshold, written without the division; the epsilon keeps a ratio
            # of exactly 1.25 (e.g. 5/4) unflagged despite floating point.
            flagged=ratio is not None and ratio * threshold > 1 + 1e-9,
        )


def fairness(
    rows: Iterable[FairnessRow], policy: Policy, *, by: str, threshold: float = 0.8
) -> FairnessReport:
    """Per-group figures and adverse-rate ratios; groups beyond 1/threshold are flagged.

    >>> report = fairness(rows, policy, by="organisation")
    >>> report.group("Tax Bureau").ratio, report.flagged
    (1.5, ['Tax Bureau'])
    """
    if not 0 < threshold <= 1:
        raise ValidationError(
            f"fairness threshold {threshold} is out of range",
            [Problem("threshold", "must be above 0 and at most 1 (the four-fifths rule: 0.8)")],
        )
    is_adverse = adverse_outcome(policy)
    overall = _Tally()
    groups: dict[str, _Tally] = {}
    for row in rows:
        name = row.group if row.group and row.group.strip() else NO_GROUP
        adverse = is_adverse(row.lists, row.measures)
        overall.add(row, adverse)
        groups.setdefault(name, _Tally()).add(row, adverse)
    total = overall.figures("(all)", policy, None, threshold)
    rate = total.adverse_rate
    ordered = sorted(groups, key=lambda g: (g == NO_GROUP, g))
    return FairnessReport(
        policy=policy.label,
        by=by,
        threshold=threshold,
        overall=replace(total, ratio=1.0 if rate else None),
        groups=tuple(groups[g].figures(g, policy, rate, threshold) for g in ordered),
    )
