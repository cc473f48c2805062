"""Promotion review: a slate of candidates ranked on performance and integrity (DESIGN 4.1).

For each candidate: the integrity component is the score computed from the records of
`[promotion].contexts` only, mapped linearly from [score_min, score_max] to [0, 100];
the candidate is not eligible while a measure of the asking authority with
`blocks = "promotion"` applies; the combined score weighs performance and integrity by the
policy's weights (divided by their sum); eligible candidates are ranked by combined score,
ties broken by subject id. Each candidate is one logged inquiry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from fractions import Fraction
from typing import Any

from credo.domain.errors import ConflictError, Problem, ValidationError
from credo.domain.policy import Policy, Visible
from credo.domain.scoring import applicable_measures, effective_records, restricted, tally
from credo.services.inquiries import Inquirer, log_inquiries
from credo.services.register import Register
from credo.services.standing import check_purpose
from credo.store import repository
from credo.store.tables import subjects

PURPOSE = "promotion-review"
MAX_SLATE = 1000


@dataclass(frozen=True)
class Candidate:
    """One slate row; `where` names it in errors (`candidates[2]` or `line 3`)."""

    subject_id: str
    performance: float
    where: str


def _validate(slate: list[Candidate]) -> None:
    problems: list[Problem] = []
    if not slate:
        problems.append(Problem("candidates", "the slate is empty"))
    if len(slate) > MAX_SLATE:
        problems.append(Problem("candidates", f"{len(slate)} candidates; at most {MAX_SLATE}"))
    seen: dict[str, str] = {}
    for c in slate:
        if not c.subject_id:
            problems.append(Problem(f"{c.where}.subject_id", "missing"))
        elif c.subject_id in seen:
            problems.append(
                Problem(f"{c.where}.subject_id", f"{c.subject_id!r} is also {seen[c.subject_id]}")
            )
        seen.setdefault(c.subject_id, c.where)
        if not 0 <= c.performance <= 100:
            problems.append(
                Problem(f"{c.where}.performance", f"{c.performance} is not between 0 and 100")
            )
    if problems:
        raise ValidationError("the slate was refused", problems)


def _round(value: Fraction) -> float:
    return round(float(value), 2)


def _assess(
    policy: Policy, authority_id: str, candidate: Candidate, facts: Any, day: date
) -> tuple[Fraction, dict[str, Any]]:
    promotion = policy.promotion
    assert promotion is not None
    header = policy.policy
    effective = effective_records(policy, facts, day)
    integrity_tally = tally(policy, restricted(policy, effective, promotion.contexts))
    integrity = (
        Fraction(integrity_tally.score - header.score_min)
        * 100
        / (header.score_max - header.score_min)
    )
    weights = promotion.weights
    w_perf = Fraction(weights["performance"]).limit_denominator(10**6)
    w_int = Fraction(weights["integrity"]).limit_denominator(10**6)
    performance = Fraction(candidate.performance).limit_denominator(10**6)
    combined = (w_perf * performance + w_int * integrity) / (w_perf + w_int)
    applied = set(applicable_measures(policy, effective))
    blocking = [
        {"measure": m.id, "text": m.text}
        for m in policy.measures
        if m.id in applied and m.authority == authority_id and m.blocks == "promotion"
    ]
    row: dict[str, Any] = {
        "subject_id": candidate.subject_id,
        "performance": candidate.performance,
        "integrity_score": integrity_tally.score,
        "integrity": _round(integrity),
        "combined": _round(combined),
        "eligible": not blocking,
        "blocked_by": blocking,
        "rank": None,
    }
    if Visible.EXPLANATION in policy.purpose_by_id[PURPOSE].sees:
        row["explanation"] = [line.to_json() for line in integrity_tally.explanation]
    return combined, row


def review_slate(
    register: Register,
    slate: list[Candidate],
    *,
    authority_id: str,
    as_of: date | None = None,
    channel: str = "api",
) -> dict[str, Any]:
    """Assess and rank a slate; the whole slate is refused if any row is wrong."""
    _validate(slate)
    day = as_of or register.clock.today()
    with register.write() as conn:
        _, policy = register.active_policy(conn)
        check_purpose(policy, authority_id, PURPOSE)
        if policy.promotion is None:
            raise ConflictError("the active policy has no [promotion] table")
        ids = [c.subject_id for c in slate]
        known = {r.id for r in conn.execute(subjects.select().where(subjects.c.id.in_(ids)))}
        missing = [
            Problem(f"{c.where}.subject_id", "not registered")
            for c in slate
            if c.subject_id not in known
        ]
        if missing:
            raise ValidationError("the slate was refused", missing)
        assessed = []
        who = Inquirer(authority_id, channel)
        for candidate in slate:
            facts = repository.record_facts(conn, candidate.subject_id)
            assessed.append(_assess(policy, authority_id, candidate, facts, day))
        log_inquiries(conn, register, who, PURPOSE, ids, day)
    eligible = sorted(
        (pair for pair in assessed if pair[1]["eligible"]),
        key=lambda pair: (-pair[0], pair[1]["subject_id"]),
    )
    for rank, (_, row) in enumerate(eligible, start=1):
        row["rank"] = rank
    ineligible = sorted(
        (row for _, row in assessed if not row["eligible"]), key=lambda row: row["subject_id"]
    )
    promotion = policy.promotion
    return {
        "purpose": PURPOSE,
        "as_of": day.isoformat(),
        "policy": policy.label,
        "weights": dict(promotion.weights),
        "contexts": [c.value for c in promotion.contexts],
        "candidates": [row for _, row in eligible] + ineligible,
    }
