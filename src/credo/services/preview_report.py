"""The impact preview's report: what it counts, and its JSON shape (the API's body)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from credo.domain.scoring import Standing


@dataclass(frozen=True)
class MembershipChange:
    """Who enters and who leaves one list, or starts and stops one measure."""

    id: str
    kind: str  # list: red | black; measure: reward | sanction
    authority: str | None  # the measure's authority (None for a list)
    entered: list[str]
    left: list[str]

    def to_json(self) -> dict[str, Any]:
        """Counts and every subject id."""
        names = ("started", "stopped") if self.authority is not None else ("entered", "left")
        out: dict[str, Any] = {"id": self.id, "kind": self.kind}
        if self.authority is not None:
            out["authority"] = self.authority
        out[names[0]] = {"count": len(self.entered), "subjects": self.entered}
        out[names[1]] = {"count": len(self.left), "subjects": self.left}
        return out


@dataclass(frozen=True)
class HistogramBin:
    """Subjects scoring low..high (inclusive) before and after."""

    low: int
    high: int
    before: int
    after: int


@dataclass(frozen=True)
class ScoreChange:
    """One of the largest score changes, with both standings from the pure scorer."""

    subject_id: str
    before: Standing
    after: Standing
    reasons: list[str]

    @property
    def delta(self) -> int:
        """Score after minus score before."""
        return self.after.score - self.before.score

    def to_json(self) -> dict[str, Any]:
        """Both standings (with their explanations) and the reasons in words."""
        return {
            "subject_id": self.subject_id,
            "delta": self.delta,
            "reasons": self.reasons,
            "before": _side(self.before),
            "after": _side(self.after),
        }


def _side(standing: Standing) -> dict[str, Any]:
    data = standing.to_json()
    return {k: data[k] for k in ("score", "grade", "lists", "measures", "explanation")}


@dataclass
class Preview:
    """The impact of activating `candidate` instead of keeping `active`, as of one day."""

    as_of: date
    active: str
    candidate: str
    subjects: int
    score_changed: int
    grade_changed: int
    mean_before: float
    mean_after: float
    grades_before: list[str]
    grades_after: list[str]
    grade_matrix: dict[str, dict[str, int]]
    lists: list[MembershipChange]
    measures: list[MembershipChange]
    histogram: list[HistogramBin]
    largest: list[ScoreChange]
    notes: list[str] = field(default_factory=list)
    fairness: dict[str, Any] | None = None
    # How the DuckDB snapshot was brought to the register: "current", "incremental" or
    # "full" ("" for the in-database engine). Not part of the report's JSON.
    snapshot: str = ""

    def to_json(self) -> dict[str, Any]:
        """The whole report as JSON-ready data (the API's response body)."""
        return {
            "as_of": self.as_of.isoformat(),
            "active": self.active,
            "candidate": self.candidate,
            "subjects": self.subjects,
            "score_changed": self.score_changed,
            "grade_changed": self.grade_changed,
            "mean_score": {"before": self.mean_before, "after": self.mean_after},
            "grades": {"before": self.grades_before, "after": self.grades_after},
            "grade_matrix": self.grade_matrix,
            "lists": [c.to_json() for c in self.lists],
            "measures": [c.to_json() for c in self.measures],
            "histogram": [
                {"low": b.low, "high": b.high, "before": b.before, "after": b.after}
                for b in self.histogram
            ],
            "largest_changes": [c.to_json() for c in self.largest],
            "fairness": self.fairness,
            "notes": self.notes,
        }
