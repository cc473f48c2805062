"""Impact preview: what activating a candidate policy would do, without changing anything.

Every subject is scored twice, set-based in the database, as of one day (by default today,
the day activation rescores as of):

- **before**: the active policy, by the same SQL the rescore runs, over the stored record
  ends and objection due days;
- **after**: the candidate, by the same SQL, with each record's end and each objection's
  due day derived from the candidate's durations exactly as activation rewrites them.

Both sides are evaluated on the same day by the same SQL, so every difference in the
report comes from the policy, never from the calendar or from standings stored on another
day. The report counts grade moves (a from-to matrix), list entries and exits, measures
starting and stopping per authority, the score distribution on fixed bins and the largest
score changes, explained record by record by the pure scorer under both policies.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from credo.domain.errors import ConflictError, Problem, ValidationError
from credo.domain.fairness import NO_GROUP, adverse_outcome
from credo.domain.policy import Policy
from credo.domain.policy_load import load_policy, policy_digest
from credo.domain.scoring import ExplanationLine, Standing, compute_standing
from credo.services.preview_report import (
    HistogramBin,
    MembershipChange,
    Preview,
    ScoreChange,
)
from credo.services.preview_snapshot import RETRIES, snapshot_home, snapshot_transaction
from credo.services.register import Register
from credo.store import preview_duckdb, preview_sql, repository
from credo.store.rescore import Bits
from credo.store.tables import policy_versions

BINS = 20
LARGEST = 20
__all__ = [
    "Engine",
    "HistogramBin",
    "MembershipChange",
    "Preview",
    "ScoreChange",
    "preview_policy",
    "preview_standings",
]


class Engine(StrEnum):
    """Where the two scorings run."""

    AUTO = "auto"  # DuckDB when installed, else the database
    DATABASE = "database"  # SQL inside SQLite or PostgreSQL, temporary tables
    DUCKDB = "duckdb"  # DuckDB over a columnar snapshot of the scoring columns


def preview_policy(
    register: Register,
    text_: str,
    *,
    as_of: date | None = None,
    source: str = "policy",
    largest: int = LARGEST,
    with_fairness: bool = True,
    engine: Engine = Engine.AUTO,
) -> Preview:
    """Score every subject under the active policy and under the candidate text; report the
    differences. Raises PolicyError naming every wrong key of the candidate.

    `with_fairness` adds how each organisation's adverse-outcome ratio changes
    (`credo.domain.fairness`, four-fifths rule); it reads every subject's row into Python.
    `engine` picks where the scoring runs; both give the same report.

    >>> report = preview_policy(register, Path("next.toml").read_text())  # doctest: +SKIP
    >>> report.grade_matrix["B"]["C"]  # subjects moving from B to C  # doctest: +SKIP
    """
    candidate = load_policy(text_, source)
    day = as_of or register.clock.today()

    def check(conn: Connection, active: Policy) -> list[str]:
        return _notes(conn, active, candidate, text_, day, register.clock.today())

    with _scored(register, engine, candidate, day, check) as scored:
        report = _report(scored, candidate, day, largest)
        report.notes = scored.notes
        report.snapshot = scored.snapshot
        if with_fairness:
            report.fairness = _fairness(scored, candidate)
    return report


@dataclass(frozen=True)
class _Scored:
    """Both scorings done: the read transaction, the active policy, the query runner over
    the comparison table, the notes and how the snapshot was refreshed."""

    conn: Connection
    active: Policy
    run: preview_sql.Run
    notes: list[str]
    snapshot: str
    names: _Names


class _Names:
    """The comma-separated ids of a comparison row's lists or measures, in the policy's own
    order: as the databases give them, or decoded from DuckDB's masks (`Bits`)."""

    def __init__(self, bits: Bits | None) -> None:
        self.bits = bits
        self._known: dict[tuple[Any, str, int], str] = {}

    def __call__(self, value: Any, kind: str, policy: Policy) -> str:
        """`value` (a row's lists or measures, `kind` "lists" or "measures") under `policy`."""
        if self.bits is None:
            return str(value or "")
        key = (value, kind, id(policy))
        found = self._known.get(key)
        if found is None:
            rules = policy.lists if kind == "lists" else policy.measures
            found = self.bits.names(int(value), kind, [r.id for r in rules])
            self._known[key] = found
        return found


@contextmanager
def _scored(
    register: Register,
    engine: Engine,
    candidate: Policy,
    day: date,
    check: Callable[[Connection, Policy], list[str]],
) -> Iterator[_Scored]:
    """Both policies scored in one read transaction; `check` runs before the scoring and
    gives the notes (or refuses the candidate)."""
    if not _use_duckdb(engine):
        with snapshot_transaction(register) as conn:
            _, active = register.active_policy(conn)
            notes = check(conn, active)
            preview_sql.compare(conn, active, candidate, day)
            yield _Scored(conn, active, preview_sql.runner(conn), notes, "", _Names(None))
        return
    # The snapshot is held before the transaction begins, so it is never ahead of it.
    with preview_duckdb.opened(register.engine, snapshot_home(register)) as snap:
        for attempt in range(1, RETRIES + 1):
            with snapshot_transaction(register) as conn:
                _, active = register.active_policy(conn)
                notes = check(conn, active)
                try:
                    snap.refresh(register.engine, conn)
                except preview_duckdb.Moved:
                    if attempt == RETRIES:
                        raise
                    continue
                bits = snap.compare(active, candidate, day)
                notes.append("scored by DuckDB over a snapshot of the register's scoring columns")
                yield _Scored(conn, active, snap.run, notes, snap.how, _Names(bits))
                return


def _use_duckdb(engine: Engine) -> bool:
    if engine == Engine.DUCKDB and not preview_duckdb.available():
        raise ValidationError(
            "the DuckDB preview engine needs the duckdb and ADBC driver packages",
            [Problem("engine", "duckdb is not installed")],
        )
    return engine == Engine.DUCKDB or (engine == Engine.AUTO and preview_duckdb.available())


def _notes(
    conn: Connection, active: Policy, candidate: Policy, text_: str, day: date, today: date
) -> list[str]:
    """What the reader should know; refuses a candidate activation would refuse."""
    notes = [
        f"before = {active.label} and after = {candidate.label}, both scored as of "
        f"{day.isoformat()} by the same SQL: the differences come from the policy alone"
    ]
    stored = conn.execute(
        select(policy_versions.c.digest, policy_versions.c.active).where(
            policy_versions.c.policy_id == candidate.policy.id,
            policy_versions.c.version == candidate.policy.version,
        )
    ).first()
    if stored is not None and stored.digest != policy_digest(text_):
        raise ConflictError(
            f"policy {candidate.label} is already stored with different text, so activating "
            "it would be refused: give the changed policy a new version"
        )
    if stored is not None and stored.active:
        notes.append(f"{candidate.label} is the active policy: activating it changes nothing")
    if day != today:
        notes.append(
            f"activation rescores as of today ({today.isoformat()}), not {day.isoformat()}"
        )
    changed = preview_sql.changed_validity(active, candidate)
    if changed:
        notes.append("record ends recomputed for: " + ", ".join(changed))
    if active.policy.objection_period != candidate.policy.objection_period:
        notes.append(
            f"objection due days recomputed: {active.policy.objection_period} -> "
            f"{candidate.policy.objection_period}"
        )
    return notes


def _report(scored: _Scored, candidate: Policy, day: date, largest: int) -> Preview:
    conn, run, active = scored.conn, scored.run, scored.active
    score_changed, grade_changed, mean_before, mean_after = preview_sql.score_summary(run)
    matrix: dict[str, dict[str, int]] = {}
    for b, a, n in preview_sql.grade_matrix(run):
        matrix.setdefault(b, {})[a] = n
    low = min(active.policy.score_min, candidate.policy.score_min)
    high = max(active.policy.score_max, candidate.policy.score_max)
    bins = preview_sql.Bins.across(low, high, BINS)
    histogram = [
        HistogramBin(lo, hi, b, a)
        for (lo, hi), (b, a) in zip(bins.edges, preview_sql.histogram(run, bins), strict=True)
    ]
    lists, measures = _memberships(scored, candidate)
    return Preview(
        as_of=day,
        active=active.label,
        candidate=candidate.label,
        subjects=preview_sql.subject_count(run),
        score_changed=score_changed,
        grade_changed=grade_changed,
        mean_before=round(mean_before, 2),
        mean_after=round(mean_after, 2),
        grades_before=[g.name for g in active.grades],
        grades_after=[g.name for g in candidate.grades],
        grade_matrix=matrix,
        lists=lists,
        measures=measures,
        histogram=histogram,
        largest=[
            _explain(conn, active, candidate, sid, day)
            for sid in preview_sql.largest_changes(run, largest)
        ],
    )


def _fairness(scored: _Scored, candidate: Policy) -> dict[str, Any]:
    """Each organisation's adverse-outcome rate and ratio to the overall rate, before and
    after, by the fairness report's own rules (`credo.domain.fairness`: adverse is a black
    list or a sanction; flagged beyond 1 / threshold of the overall rate).

    The engine counts subjects per organisation and combination of lists and measures (a
    few thousand rows however many subjects), so no subject's row comes into Python.
    """
    active, decode = scored.active, scored.names
    was, now = _Adverse(active), _Adverse(candidate)
    for org, b_lists, b_measures, a_lists, a_measures, n in preview_sql.outcome_counts(scored.run):
        group = org if org and str(org).strip() else NO_GROUP
        was.add(
            group, decode(b_lists, "lists", active), decode(b_measures, "measures", active), int(n)
        )
        now.add(
            group,
            decode(a_lists, "lists", candidate),
            decode(a_measures, "measures", candidate),
            int(n),
        )
    threshold = FAIRNESS_THRESHOLD
    names = sorted(was.subjects, key=lambda g: (g == NO_GROUP, g))
    groups: list[dict[str, Any]] = []
    for name in names:
        before, after = was.figures(name, threshold), now.figures(name, threshold)
        groups.append(
            {
                "group": name,
                "subjects": was.subjects[name],
                **{key: {"before": before[key], "after": after[key]} for key in before},
            }
        )
    return {
        "by": "organisation",
        "threshold": threshold,
        "ratio_limit": 1 / threshold,
        "adverse": "on a black list or under a sanction measure",
        "overall": _pair(was.rate(None), now.rate(None), "adverse_rate"),
        "groups": groups,
        "flagged": {
            "before": [g["group"] for g in groups if g["flagged"]["before"]],
            "after": [g["group"] for g in groups if g["flagged"]["after"]],
        },
    }


FAIRNESS_THRESHOLD = 0.8  # the four-fifths rule, as `credo report fairness` defaults to


class _Adverse:
    """Subjects and adverse outcomes per group under one policy (the figures of
    `credo.domain.fairness.fairness` that the preview shows, computed the same way)."""

    def __init__(self, policy: Policy) -> None:
        self.is_adverse = adverse_outcome(policy)
        self.subjects: dict[str, int] = {}
        self.adverse: dict[str, int] = {}
        self.everyone = 0
        self.everyone_adverse = 0

    def add(self, group: str, lists: str | None, measures: str | None, n: int) -> None:
        hit = n if self.is_adverse(_tuple(lists), _tuple(measures)) else 0
        self.subjects[group] = self.subjects.get(group, 0) + n
        self.adverse[group] = self.adverse.get(group, 0) + hit
        self.everyone += n
        self.everyone_adverse += hit

    def rate(self, group: str | None) -> float | None:
        """The group's adverse rate (None: everyone's); None without subjects."""
        if group is None:
            n, hits = self.everyone, self.everyone_adverse
        else:
            n, hits = self.subjects.get(group, 0), self.adverse.get(group, 0)
        return hits / n if n else None

    def figures(self, group: str, threshold: float) -> dict[str, Any]:
        """adverse_rate, ratio to the overall rate, and whether it is flagged."""
        rate, overall = self.rate(group), self.rate(None)
        ratio = rate / overall if rate is not None and overall else None
        return {
            "adverse_rate": rate,
            "ratio": ratio,
            # as credo.domain.fairness: ratio > 1/threshold without the division
            "flagged": ratio is not None and ratio * threshold > 1 + 1e-9,
        }


def _pair(before: Any, after: Any, key: str) -> dict[str, Any]:
    return {key: {"before": before, "after": after}}


def _tuple(value: str | None) -> tuple[str, ...]:
    return tuple(v for v in (value or "").split(",") if v)


def _split(value: str | None) -> set[str]:
    return {v for v in (value or "").split(",") if v}


def _memberships(
    scored: _Scored, candidate: Policy
) -> tuple[list[MembershipChange], list[MembershipChange]]:
    """List entries/exits and measure starts/stops, over the union of both policies' ids."""
    active, names = scored.active, scored.names
    # Subjects by how their memberships change: the sets are compared once per way.
    ways: dict[tuple[Any, ...], list[str]] = {}
    for sid, *way in preview_sql.membership_changes(scored.run):
        ways.setdefault(tuple(way), []).append(str(sid))
    lists: dict[str, tuple[list[str], list[str]]] = {}
    measures: dict[str, tuple[list[str], list[str]]] = {}
    for (b_lists, a_lists, b_measures, a_measures), sids in ways.items():
        for table, before, after in (
            (
                lists,
                _split(names(b_lists, "lists", active)),
                _split(names(a_lists, "lists", candidate)),
            ),
            (
                measures,
                _split(names(b_measures, "measures", active)),
                _split(names(a_measures, "measures", candidate)),
            ),
        ):
            for ident in after - before:
                table.setdefault(ident, ([], []))[0].extend(sids)
            for ident in before - after:
                table.setdefault(ident, ([], []))[1].extend(sids)
    list_kinds = {r.id: r.kind.value for r in [*active.lists, *candidate.lists]}
    measure_info = {
        m.id: (m.kind.value, m.authority) for m in [*active.measures, *candidate.measures]
    }
    list_ids = _union([r.id for r in candidate.lists], [r.id for r in active.lists])
    measure_ids = _union([m.id for m in candidate.measures], [m.id for m in active.measures])
    for table in (lists, measures):
        for entered, left in table.values():
            entered.sort()
            left.sort()
    return (
        [MembershipChange(i, list_kinds[i], None, *lists.get(i, ([], []))) for i in list_ids],
        [MembershipChange(i, *measure_info[i], *measures.get(i, ([], []))) for i in measure_ids],
    )


def _union(first: list[str], second: list[str]) -> list[str]:
    return first + [i for i in second if i not in first]


def _explain(
    conn: Connection, active: Policy, candidate: Policy, subject_id: str, day: date
) -> ScoreChange:
    """Both standings of one subject by the pure scorer, and the changes in words."""
    facts = repository.record_facts(conn, subject_id)
    before = compute_standing(active, subject_id, facts, day)
    after = compute_standing(candidate, subject_id, facts, day)
    return ScoreChange(subject_id, before, after, _reasons(active, candidate, before, after))


def _by_category(lines: tuple[ExplanationLine, ...]) -> dict[str, tuple[int, int]]:
    out: dict[str, tuple[int, int]] = {}
    for line in lines:
        n, points = out.get(line.category, (0, 0))
        out[line.category] = (n + 1, points + line.points)
    return out


def _reasons(active: Policy, candidate: Policy, before: Standing, after: Standing) -> list[str]:
    """One line per category whose contribution changed, naming the rule that changed."""
    was, now = _by_category(before.explanation), _by_category(after.explanation)
    reasons = []
    for category in sorted(set(was) | set(now)):
        (n0, p0), (n1, p1) = was.get(category, (0, 0)), now.get(category, (0, 0))
        if (n0, p0) == (n1, p1):
            continue
        rules = _rule_changes(active, candidate, category)
        reasons.append(
            f"{category}: {n0} record(s) counting {p0:+d} -> {n1} record(s) counting {p1:+d}"
            + (f" ({'; '.join(rules)})" if rules else "")
        )
    head_b, head_a = active.policy, candidate.policy
    if (head_b.base_score, head_b.score_min, head_b.score_max) != (
        head_a.base_score,
        head_a.score_min,
        head_a.score_max,
    ):
        reasons.append(
            f"base score {head_b.base_score} -> {head_a.base_score}, range "
            f"{head_b.score_min}..{head_b.score_max} -> {head_a.score_min}..{head_a.score_max}"
        )
    return reasons


def _rule_changes(active: Policy, candidate: Policy, category: str) -> list[str]:
    old = active.category_by_id.get(category)
    new = candidate.category_by_id.get(category)
    if old is None:
        return ["new category"]
    if new is None:
        return ["category removed"]
    changes = []
    for name in ("points", "cap", "valid_for", "suspend_while_disputed", "context"):
        a, b = getattr(old, name), getattr(new, name)
        if a != b:
            changes.append(f"{name} {a} -> {b}")
    return changes


Row = tuple[int, str, str, str]  # score, grade, lists, measures (comma-separated)


def preview_standings(
    register: Register,
    text_: str,
    *,
    as_of: date | None = None,
    source: str = "policy",
    engine: Engine = Engine.DATABASE,
) -> dict[str, tuple[Row, Row]]:
    """Every subject's (before, after) standing as the preview computes them, for checks
    and research: what activating the candidate would store for each subject."""
    candidate = load_policy(text_, source)
    day = as_of or register.clock.today()
    with _scored(register, engine, candidate, day, lambda conn, active: []) as scored:
        names, active = scored.names, scored.active
        return {
            str(r[0]): (
                (
                    int(r[2]),
                    str(r[3]),
                    names(r[4], "lists", active),
                    names(r[5], "measures", active),
                ),
                (
                    int(r[6]),
                    str(r[7]),
                    names(r[8], "lists", candidate),
                    names(r[9], "measures", candidate),
                ),
            )
            for r in preview_sql.all_rows(scored.run)
        }
