"""The fairness report over the register: stored standings, or set-based ones for another day.

Nothing is written: the report reads subjects and standings (or computes standings in one
SQL query with `RescoreSql`) and hands them to the pure `credo.domain.fairness`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

from credo.domain.errors import Problem, ValidationError
from credo.domain.fairness import FairnessReport, FairnessRow, fairness
from credo.services.register import Register
from credo.store.db import dateparam
from credo.store.repository import newest_record_id, pending_through
from credo.store.rescore import RescoreSql


class Grouping(StrEnum):
    """The subject attributes a fairness report may group by (all already on file)."""

    ORGANISATION = "organisation"
    POSITION = "position"
    KIND = "kind"


@dataclass(frozen=True)
class FairnessResult:
    """The report, the day it describes, and whether stored standings were used."""

    report: FairnessReport
    as_of: date
    source: str  # "stored" | "computed"

    def to_json(self) -> dict[str, Any]:
        """The report with its day and source."""
        return {"as_of": self.as_of.isoformat(), "source": self.source, **self.report.to_json()}


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(v for v in (value or "").split(",") if v)


def _rows(conn: Connection, sql: str, params: dict[str, Any]) -> Iterator[FairnessRow]:
    for row in conn.execute(text(sql), params):
        yield FairnessRow(row[0], row[1], int(row[2]), row[3], _split(row[4]), _split(row[5]))


def _stored_day(conn: Connection, version_id: int) -> date | None:
    """The one day all stored standings describe, or None when they are stale or mixed.

    Fresh means: every subject has a standing, all of the active policy and the same day,
    and no record was filed after the standings were computed.
    """
    state = conn.execute(
        text("SELECT scored_as_of FROM register_state WHERE id = 1")
    ).scalar_one_or_none()
    if state is None or pending_through(conn) < newest_record_id(conn):
        return None
    row = conn.execute(
        text(
            "SELECT COUNT(*), MIN(as_of), MAX(as_of), MIN(policy_version_id), "
            "MAX(policy_version_id), (SELECT COUNT(*) FROM subjects) FROM standings"
        )
    ).one()
    count, first, last, low, high, subjects = row
    if count != subjects or first != last or (count and not low == high == version_id):
        return None
    day = state if count == 0 else first
    return date.fromisoformat(day) if isinstance(day, str) else day


def fairness_report(
    register: Register,
    *,
    by: Grouping | str = Grouping.ORGANISATION,
    as_of: date | None = None,
    threshold: float = 0.8,
) -> FairnessResult:
    """Group every subject by an attribute on file and compare their standings.

    Stored standings are used when they are fresh and describe `as_of` (default: their own
    day, or today when none are stored); any other day is scored set-based, in one query,
    under the active policy, and nothing is stored.

    >>> fairness_report(register, by="position").report.flagged
    ['Clerk']
    """
    try:
        grouping = Grouping(by)
    except ValueError:
        choices = ", ".join(g.value for g in Grouping)
        raise ValidationError(
            f"cannot group by {by!r}", [Problem("by", f"use one of: {choices}")]
        ) from None
    column = f"s.{grouping.value}"  # a closed set of column names: safe to write in
    with register.read() as conn:
        version_id, policy = register.active_policy(conn)
        stored = _stored_day(conn, version_id)
        day = as_of or stored or register.clock.today()
        if stored is not None and day == stored:
            source = "stored"
            sql = (
                f"SELECT s.id, {column}, st.score, st.grade, st.lists, st.measures "
                "FROM subjects s JOIN standings st ON st.subject_id = s.id"
            )
        else:
            source = "computed"
            scoring = RescoreSql(policy).select(dialect=conn.dialect.name)
            sql = (
                f"WITH f AS ({scoring}) SELECT s.id, {column}, f.score, f.grade, f.lists, "
                "f.measures FROM f JOIN subjects s ON s.id = f.subject_id"
            )
        rows = _rows(conn, sql, {"t": dateparam(conn, day)} if source == "computed" else {})
        report = fairness(rows, policy, by=grouping.value, threshold=threshold)
    return FairnessResult(report=report, as_of=day, source=source)
