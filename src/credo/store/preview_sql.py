"""The SQL side of a policy preview: both policies scored as of one day, compared in place.

The candidate is scored by the same `RescoreSql` text activation stores, with each record's
end and each objection's due day derived from the candidate's durations exactly as
`credo.services.policies.activate_policy` rewrites them: only the categories whose
`valid_for` changed get a new end (capped by the repair date), and due days change only
when `objection_period` did. The active policy is scored by the same SQL over the stored
columns, as of the same day. Nothing stored is written: the two results live in temporary
tables of the preview's own connection.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from itertools import pairwise
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

from credo.domain.durations import Duration
from credo.domain.policy import Policy
from credo.store.dates import add_duration_sql
from credo.store.rescore import Bits, RescoreSql

TABLE = "credo_preview"
_PARTS = ("credo_preview_before", "credo_preview_after", TABLE)


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


Run = Callable[[str], Sequence[Sequence[Any]]]  # SQL text in, rows out (any engine)


def add_duration(dialect: str, column: str, duration: Duration) -> str:
    """`column + duration` in SQLite, PostgreSQL or DuckDB (months clamped, then days)."""
    if dialect == "duckdb":
        return f"(CAST({column} + to_months({duration.months}) AS DATE) + {duration.days})"
    return add_duration_sql(dialect, column, duration)


def changed_validity(active: Policy | None, candidate: Policy) -> list[str]:
    """The candidate's categories whose end dates activation recomputes (as it decides)."""
    return [
        c.id
        for c in candidate.categories
        if active is None
        or c.id not in active.category_by_id
        or active.category_by_id[c.id].valid_for != c.valid_for
    ]


def candidate_ends(dialect: str, active: Policy | None, candidate: Policy) -> str:
    """SQL for a record's end once the candidate is active: recomputed for the categories
    whose validity changed (the repair date caps it), the stored end for the others."""
    branches = []
    for category_id in changed_validity(active, candidate):
        valid_for = candidate.category_by_id[category_id].valid_for
        end = add_duration(dialect, "r.decided_on", valid_for)
        branches.append(
            f"WHEN {_quote(category_id)} THEN CASE WHEN r.repaired_on IS NOT NULL AND "
            f"r.repaired_on < {end} THEN r.repaired_on ELSE {end} END"
        )
    if not branches:
        return "r.ends_on"
    return f"(CASE r.category {' '.join(branches)} ELSE r.ends_on END)"


def candidate_due(dialect: str, active: Policy | None, candidate: Policy) -> str:
    """SQL for an objection's due day once the candidate is active."""
    if active is not None and active.policy.objection_period == candidate.policy.objection_period:
        return "c.due_on"
    return add_duration(dialect, "c.filed_on", candidate.policy.objection_period)


def _day_literal(dialect: str, day: date) -> str:
    # Utility statements (CREATE TABLE AS) take no bind parameters on PostgreSQL; the day
    # is a date credo made, written in as a literal.
    iso = day.isoformat()
    return f"'{iso}'" if dialect == "sqlite" else f"DATE '{iso}'"


def _with_day(sql: str, literal: str) -> str:
    return re.sub(r"(?<![\w:.'-]):t\b", literal, sql)


def active_sql(
    dialect: str,
    active: Policy,
    as_of: date,
    subjects: str | None = None,
    bits: Bits | None = None,
) -> str:
    """The "before" SELECT: the active policy over the stored ends and due days, as of
    `as_of`, for every subject or for those the `subjects` subquery returns."""
    return _with_day(
        RescoreSql(active).select(subjects, dialect=dialect, bits=bits),
        _day_literal(dialect, as_of),
    )


def numbering(active: Policy, candidate: Policy | None = None) -> Bits | None:
    """DuckDB's numbering of lists and measures for masks: the active policy's ids, then the
    candidate's new ones, so the active scoring a snapshot keeps between previews is the
    same whatever the candidate. None when the ids do not fit in a mask."""
    lists = [r.id for r in active.lists]
    measures = [m.id for m in active.measures]
    if candidate is not None:
        lists += [r.id for r in candidate.lists if r.id not in lists]
        measures += [m.id for m in candidate.measures if m.id not in measures]
    bits = Bits(tuple(lists), tuple(measures))
    return bits if bits.fits() else None


def columnar_comparison(
    active: Policy, candidate: Policy, as_of: date, scored: str
) -> tuple[str, str, Bits | None]:
    """(before, joined, bits) for DuckDB: the active policy's scoring, which the caller
    keeps in the table `scored`, and one SELECT that scores the candidate and joins it to
    `scored`, giving the comparison rows (the columns of `comparison_sql`'s joined).

    Lists and measures are masks numbered by `bits` (comma-separated names when None), and
    the candidate's scoring carries each subject's name and organisation from its own scan
    of the subjects: a join of a million rows costs DuckDB more for every column it carries
    across, most for strings.
    """
    bits = numbering(active, candidate)
    day = _day_literal("duckdb", as_of)
    before = active_sql("duckdb", active, as_of, bits=bits)
    after = _with_day(
        RescoreSql(candidate).select(
            dialect="duckdb",
            ends=candidate_ends("duckdb", active, candidate),
            due=candidate_due("duckdb", active, candidate),
            bits=bits,
            carry=("name", "organisation"),
        ),
        day,
    )
    joined = (
        "SELECT a.name AS subject_id, a.organisation, "
        "b.score AS b_score, b.grade AS b_grade, b.lists AS b_lists, "
        "b.measures AS b_measures, a.score AS a_score, a.grade AS a_grade, "
        f"a.lists AS a_lists, a.measures AS a_measures FROM ({after}) a "
        f"JOIN {scored} b ON b.subject_id = a.subject_id"
    )
    return before, joined, bits


def comparison_sql(
    dialect: str, active: Policy, candidate: Policy, as_of: date
) -> tuple[str, str, str]:
    """(before, after, joined) SELECTs: the two scorings and the comparison row per subject:
    subject_id, organisation, then b_/a_ score, grade, lists and measures."""
    day = _day_literal(dialect, as_of)
    before = active_sql(dialect, active, as_of)
    after = _with_day(
        RescoreSql(candidate).select(
            dialect=dialect,
            ends=candidate_ends(dialect, active, candidate),
            due=candidate_due(dialect, active, candidate),
        ),
        day,
    )
    joined = (
        "SELECT b.subject_id, s.organisation, "
        "b.score AS b_score, b.grade AS b_grade, b.lists AS b_lists, "
        "b.measures AS b_measures, a.score AS a_score, a.grade AS a_grade, "
        "a.lists AS a_lists, a.measures AS a_measures "
        "FROM credo_preview_before b JOIN credo_preview_after a "
        "ON a.subject_id = b.subject_id JOIN subjects s ON s.id = b.subject_id"
    )
    return before, after, joined


def compare(conn: Connection, active: Policy, candidate: Policy, as_of: date) -> None:
    """Score every subject under both policies into the temporary table `credo_preview`."""
    before, after, joined = comparison_sql(conn.dialect.name, active, candidate, as_of)
    drop(conn)
    conn.execute(text(f"CREATE TEMP TABLE credo_preview_before AS {before}"))
    conn.execute(text(f"CREATE TEMP TABLE credo_preview_after AS {after}"))
    conn.execute(text(f"CREATE TEMP TABLE {TABLE} AS {joined}"))
    conn.execute(text("DROP TABLE credo_preview_before"))
    conn.execute(text("DROP TABLE credo_preview_after"))


def runner(conn: Connection) -> Run:
    """Run report queries on a SQLAlchemy connection."""
    return lambda sql: conn.execute(text(sql)).all()


def drop(conn: Connection) -> None:
    """Remove the preview's temporary tables."""
    for name in _PARTS:
        conn.execute(text(f"DROP TABLE IF EXISTS {name}"))


def subject_count(run: Run) -> int:
    """How many subjects the preview scored."""
    return int(run(f"SELECT COUNT(*) FROM {TABLE}")[0][0])


def grade_matrix(run: Run) -> list[tuple[str, str, int]]:
    """(grade before, grade after, subjects) for every pair that occurs."""
    rows = run(f"SELECT b_grade, a_grade, COUNT(*) FROM {TABLE} GROUP BY b_grade, a_grade")
    return [(str(b), str(a), int(n)) for b, a, n in rows]


@dataclass(frozen=True)
class Bins:
    """Fixed histogram bins of `width` points from `low`; the last bin ends at `high`."""

    low: int
    high: int
    width: int

    @classmethod
    def across(cls, low: int, high: int, count: int) -> Bins:
        """At most `count` bins of one width covering low..high (e.g. 0-99 ... 1900-2000)."""
        return cls(low, high, max(1, -(-(high - low) // count)))

    @property
    def count(self) -> int:
        """How many bins there are."""
        return max(1, -(-(self.high - self.low) // self.width))

    @property
    def edges(self) -> list[tuple[int, int]]:
        """(first, last) score of each bin."""
        starts = [self.low + i * self.width for i in range(self.count)]
        return [(a, b - 1) for a, b in pairwise(starts)] + [(starts[-1], self.high)]


def histogram(run: Run, bins: Bins) -> list[tuple[int, int]]:
    """Subjects per bin before and after, one (before, after) pair per bin."""
    counts = [[0, 0] for _ in bins.edges]
    last = bins.count - 1
    for side, column in enumerate(("b_score", "a_score")):
        # Scores are NUMERIC on PostgreSQL (a SUM of counts) and `/` divides exactly in
        # DuckDB: subtracting the remainder first makes the division exact everywhere.
        v = f"CAST({column} - {bins.low} AS INTEGER)"
        raw = f"CAST(({v} - {v} % {bins.width}) / {bins.width} AS INTEGER)"
        index = f"CASE WHEN {raw} > {last} THEN {last} ELSE {raw} END"
        sql = f"SELECT {index}, COUNT(*) FROM {TABLE} GROUP BY {index}"
        for found, n in run(sql):
            counts[int(found)][side] += int(n)
    return [(b, a) for b, a in counts]


def membership_changes(run: Run) -> Sequence[Sequence[Any]]:
    """Subjects whose lists or measures differ: subject_id, b_lists, a_lists, b_measures,
    a_measures."""
    return run(
        f"SELECT subject_id, b_lists, a_lists, b_measures, a_measures FROM {TABLE} "
        "WHERE b_lists <> a_lists OR b_measures <> a_measures"
    )


def score_summary(run: Run) -> tuple[int, int, float, float]:
    """Subjects whose score changes, whose grade changes, and the mean score on each side."""
    row = run(
        "SELECT SUM(CASE WHEN a_score <> b_score THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN a_grade <> b_grade THEN 1 ELSE 0 END), "
        f"AVG(b_score), AVG(a_score) FROM {TABLE}"
    )[0]
    return int(row[0] or 0), int(row[1] or 0), float(row[2] or 0), float(row[3] or 0)


def largest_changes(run: Run, limit: int) -> list[str]:
    """The subjects of the `limit` largest score changes (ties by subject id)."""
    rows = run(
        f"SELECT subject_id FROM {TABLE} WHERE a_score <> b_score "
        f"ORDER BY ABS(a_score - b_score) DESC, subject_id LIMIT {int(limit)}"
    )
    return [str(r[0]) for r in rows]


COLUMNS = (
    "subject_id",
    "organisation",
    *(f"{side}_{c}" for side in "ba" for c in ("score", "grade", "lists", "measures")),
)


def all_rows(run: Run) -> Sequence[Sequence[Any]]:
    """Every comparison row: the COLUMNS."""
    return run(f"SELECT {', '.join(COLUMNS)} FROM {TABLE}")


def outcome_counts(run: Run) -> Sequence[Sequence[Any]]:
    """Subjects per organisation and combination of lists and measures on both sides:
    organisation, b_lists, b_measures, a_lists, a_measures, count."""
    columns = "organisation, b_lists, b_measures, a_lists, a_measures"
    return run(f"SELECT {columns}, COUNT(*) FROM {TABLE} GROUP BY {columns}")
