"""Notices of a policy activation: what changed for each person and which rule caused it.

Runs inside the activation's rescore, while `credo_fresh` holds the new standings and
`standings` the old ones, so the notices and the standings they describe commit together.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

from credo.domain.policy import Policy
from credo.domain.policy_diff import ItemChange, PolicyDiff, render
from credo.store import repository
from credo.store.db import dateparam
from credo.store.tables import notices

# Subjects whose score, grade, lists or measures differ; new subjects only when listed.
_CHANGED = (
    "CREATE TEMP TABLE credo_changed AS "
    "SELECT f.subject_id, f.score, f.grade, f.lists, f.measures, s.score AS old_score, "
    "s.grade AS old_grade, s.lists AS old_lists, s.measures AS old_measures "
    "FROM credo_fresh f LEFT JOIN standings s ON s.subject_id = f.subject_id "
    "WHERE (s.subject_id IS NULL AND (f.lists <> '' OR f.measures <> '')) "
    "OR s.score <> f.score OR s.grade <> f.grade OR s.lists <> f.lists "
    "OR s.measures <> f.measures"
)


def state(score: Any, grade: Any, lists: Any, measures: Any) -> str:
    """A notice's before/after: `score|grade|lists|measures`."""
    if score is None:
        return ""
    return f"{score}|{grade}|{lists or ''}|{measures or ''}"


def _moved(before: str | None, after: str | None) -> set[str]:
    old = {x for x in (before or "").split(",") if x}
    new = {x for x in (after or "").split(",") if x}
    return old ^ new


def _rule_line(change: ItemChange, names: dict[str, str]) -> str:
    label = f"{names.get(change.key, change.key)} ({change.key})" if change.key else change.section
    if change.kind.value == "added":
        return f"New rule for {label}."
    if change.kind.value == "removed":
        return f"The rule for {label} was removed."
    fields = "; ".join(f"{f.field} {render(f.old)} -> {render(f.new)}" for f in change.fields)
    return f"Rule changed for {label}: {fields}."


def activation_notices(
    policy: Policy, old: Policy | None, diff: PolicyDiff | None, as_of: date, now: datetime
) -> Callable[[Connection], None]:
    """The `notify` hook of the activation's rescore."""

    def write(conn: Connection) -> None:
        conn.execute(text("DROP TABLE IF EXISTS credo_changed"))
        conn.execute(text(_CHANGED))
        # A temporary table: autovacuum never analyzes it, and it is joined to the records
        # below (see repository.refresh_stale_statistics).
        repository.refresh_statistics(conn, "credo_changed")
        changed = list(conn.execute(text("SELECT * FROM credo_changed")))
        if not changed:
            conn.execute(text("DROP TABLE credo_changed"))
            return
        rules = {c.key: c for c in diff.section("categories")} if diff else {}
        names = {c.id: c.name for c in policy.categories}
        if old is not None:
            names = {**{c.id: c.name for c in old.categories}, **names}
        theirs: dict[str, set[str]] = defaultdict(set)
        if rules:
            quoted = ", ".join("'" + key.replace("'", "''") + "'" for key in sorted(rules))
            for row in conn.execute(
                text(
                    "SELECT DISTINCT r.subject_id, r.category FROM records r "
                    "JOIN credo_changed c ON c.subject_id = r.subject_id "
                    f"WHERE r.category IN ({quoted}) AND r.revoked = false "
                    "AND r.decided_on <= :t"
                ),
                {"t": dateparam(conn, as_of)},
            ):
                theirs[row.subject_id].add(row.category)
        sections = {
            name: diff.section(name) if diff else []
            for name in ("grades", "lists", "measures", "policy")
        }
        head = f"Policy {policy.label} replaced {old.label if old else 'no policy'}."
        rows = []
        for row in changed:
            lines = [head]
            lines += [_rule_line(rules[c], names) for c in sorted(theirs.get(row.subject_id, ()))]
            if row.old_grade != row.grade:
                lines += [_rule_line(c, {}) for c in sections["grades"]]
            moved = _moved(row.old_lists, row.lists) | _moved(row.old_measures, row.measures)
            for name in ("lists", "measures"):
                lines += [_rule_line(c, {}) for c in sections[name] if c.key in moved]
            lines += [_rule_line(c, {}) for c in sections["policy"]]
            rows.append(
                {
                    "subject_id": row.subject_id,
                    "kind": "policy.changed",
                    "before": state(row.old_score, row.old_grade, row.old_lists, row.old_measures),
                    "after": state(row.score, row.grade, row.lists, row.measures),
                    "message": "\n".join(lines),
                    "created_at": now,
                    "status": "pending",
                    "attempts": 0,
                }
            )
        conn.execute(notices.insert(), rows)
        conn.execute(text("DROP TABLE credo_changed"))

    return write
