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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

from credo.domain.policy import Policy
from credo.store.dates import add_duration_sql
from credo.store.rescore import RescoreSql

TABLE = "credo_preview"
_PARTS = ("credo_preview_before", "credo_preview_after", TABLE)


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


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
        end = add_duration_sql(dialect, "r.decided_on", valid_for)
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
    return add_duration_sql(dialect, "c.filed_on", candidate.policy.objection_period)


def _day_literal(dialect: str, day: date) -> str:
    # Utility statements (CREATE TABLE AS) take no bind parameters on PostgreSQL; the day
    # is a date credo made, written in as a literal.
    iso = day.isoformat()
    return f"'{iso}'" if dialect == "sqlite" else f"DATE '{iso}'"


def _with_day(sql: str, literal: str) -> str:
    return re.sub(r"(?<![\w:.'-]):t\b", literal, sql)


def compare(conn: Connection, active: Policy, candidate: Policy, as_of: date) -> None:
    """Score every subject under both policies into the temporary table `credo_preview`:
    subject_id, organisation, then b_/a_ score, grade, lists and measures (before/after)."""
    dialect = conn.dialect.name
    day = _day_literal(dialect, as_of)
    before = _with_day(RescoreSql(active).select(dialect=dialect), day)
    after = _with_day(
        RescoreSql(candidate).select(
            dialect=dialect,
            ends=candidate_ends(dialect, active, candidate),
            due=candidate_due(dialect, active, candidate),
        ),
        day,
    )
    drop(conn)
    conn.execute(text(f"CREATE TEMP TABLE credo_preview_before AS {before}"))
    conn.execute(text(f"CREATE TEMP TABLE credo_preview_after AS {after}"))
    conn.execute(
        text(
            f"CREATE TEMP TABLE {TABLE} AS SELECT b.subject_id, s.organisation, "
            "b.score AS b_score, b.grade AS b_grade, b.lists AS b_lists, "
            "b.measures AS b_measures, a.score AS a_score, a.grade AS a_grade, "
            "a.lists AS a_lists, a.measures AS a_measures "
            "FROM credo_preview_before b JOIN credo_preview_after a "
            "ON a.subject_id = b.subject_id JOIN subjects s ON s.id = b.subject_id"
        )
    )
    conn.execute(text("DROP TABLE credo_preview_before"))
    conn.execute(text("DROP TABLE credo_preview_after"))


def drop(conn: Connection) -> None:
    """Remove the preview's temporary tables."""
    for name in _PARTS:
        conn.execute(text(f"DROP TABLE IF EXISTS {name}"))


def subject_count(conn: Connection) -> int:
    """How many subjects the preview scored."""
    return int(conn.execute(text(f"SELECT COUNT(*) FROM {TABLE}")).scalar_one())


def grade_matrix(conn: Connection) -> list[tuple[str, str, int]]:
    """(grade before, grade after, subjects) for every pair that occurs."""
    rows = conn.execute(
        text(f"SELECT b_grade, a_grade, COUNT(*) FROM {TABLE} GROUP BY b_grade, a_grade")
    )
    return [(str(b), str(a), int(n)) for b, a, n in rows]


@dataclass(frozen=True)
class Bins:
    """Fixed histogram bins of `width` points from `low` to `high` (inclusive)."""

    low: int
    high: int
    width: int

    @classmethod
    def across(cls, low: int, high: int, count: int) -> Bins:
        """`count` equal bins (the last may be narrower) covering low..high."""
        span = high - low + 1
        return cls(low, high, max(1, -(-span // count)))

    @property
    def edges(self) -> list[tuple[int, int]]:
        """(first, last) score of each bin."""
        out, start = [], self.low
        while start <= self.high:
            out.append((start, min(start + self.width - 1, self.high)))
            start += self.width
        return out


def histogram(conn: Connection, bins: Bins) -> list[tuple[int, int]]:
    """Subjects per bin before and after, one (before, after) pair per bin."""
    counts = [[0, 0] for _ in bins.edges]
    for side, column in enumerate(("b_score", "a_score")):
        sql = (
            # Scores are NUMERIC on PostgreSQL (a SUM of counts): integer division needs a cast.
            f"SELECT CAST({column} - {bins.low} AS INTEGER) / {bins.width} AS bin, COUNT(*) "
            f"FROM {TABLE} GROUP BY CAST({column} - {bins.low} AS INTEGER) / {bins.width}"
        )
        for index, n in conn.execute(text(sql)):
            counts[int(index)][side] = int(n)
    return [(b, a) for b, a in counts]


def membership_changes(conn: Connection) -> list[Any]:
    """Subjects whose lists or measures differ: subject_id, b_lists, a_lists, b_measures,
    a_measures."""
    return list(
        conn.execute(
            text(
                f"SELECT subject_id, b_lists, a_lists, b_measures, a_measures FROM {TABLE} "
                "WHERE b_lists <> a_lists OR b_measures <> a_measures ORDER BY subject_id"
            )
        )
    )


def score_summary(conn: Connection) -> Any:
    """Subjects whose score changes, whose grade changes, and the mean score on each side."""
    return conn.execute(
        text(
            "SELECT SUM(CASE WHEN a_score <> b_score THEN 1 ELSE 0 END) AS score_changed, "
            "SUM(CASE WHEN a_grade <> b_grade THEN 1 ELSE 0 END) AS grade_changed, "
            f"AVG(b_score) AS b_mean, AVG(a_score) AS a_mean FROM {TABLE}"
        )
    ).one()


def largest_changes(conn: Connection, limit: int) -> list[Any]:
    """The `limit` largest score changes (then by subject id): the comparison rows."""
    return list(
        conn.execute(
            text(
                f"SELECT * FROM {TABLE} WHERE a_score <> b_score "
                "ORDER BY ABS(a_score - b_score) DESC, subject_id LIMIT :n"
            ),
            {"n": limit},
        )
    )


def all_rows(conn: Connection, columns: Sequence[str]) -> Any:
    """Every comparison row with these columns (a streaming result)."""
    query = text(f"SELECT {', '.join(columns)} FROM {TABLE}")
    return conn.execute(query.execution_options(stream_results=True))
