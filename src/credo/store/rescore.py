"""Set-based rescoring: one SQL text, generated from the policy, scores every subject.

The text is portable (SQLite, PostgreSQL, DuckDB): CASE instead of LEAST/GREATEST, `||` for
strings. It must agree with `credo.domain.scoring`; property tests hold the two together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy import text
from sqlalchemy.engine import Connection

from credo.domain.guard import Context
from credo.domain.policy import AnyOf, ListRule, ListTrigger, Policy
from credo.store.db import dateparam, is_sqlite

# Pending subjects: those with a record filed after the last rescore (see register_state).
PENDING = "SELECT subject_id FROM records WHERE id > :through"


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _in(column: str, values: Sequence[str]) -> str:
    if not values:
        return "1 = 0"
    return f"{column} IN ({', '.join(_quote(v) for v in values)})"


def _clamp(expr: str, low: int, high: int) -> str:
    return f"CASE WHEN {expr} < {low} THEN {low} WHEN {expr} > {high} THEN {high} ELSE {expr} END"


@dataclass(frozen=True)
class _Scope:
    """One view of a subject's records: all of them, or those of a measure's contexts."""

    suffix: str
    contexts: frozenset[Context] | None

    def categories(self, policy: Policy) -> list[str]:
        return [
            c.id for c in policy.categories if self.contexts is None or c.context in self.contexts
        ]


class RescoreSql:
    """The SQL texts for one policy.

    >>> RescoreSql(policy).select(restrict=False)  # doctest: +SKIP
    'WITH eff AS (...) SELECT subject_id, score, grade, lists, measures FROM ...'
    """

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.scopes = [_Scope("", None)]
        for measure in policy.measures:
            key = frozenset(measure.contexts)
            if all(s.contexts != key for s in self.scopes):
                self.scopes.append(_Scope(f"_m{len(self.scopes)}", key))

    def _scope_for(self, contexts: Sequence[Context]) -> _Scope:
        key = frozenset(contexts)
        return next(s for s in self.scopes if s.contexts == key)

    def _points(self) -> str:
        branches = []
        for c in self.policy.categories:
            raw = f"n * {c.points}"
            if c.cap is not None:
                bound = "<" if c.cap < 0 else ">"
                raw = (
                    f"CASE WHEN n * {c.points} {bound} {c.cap} THEN {c.cap} ELSE n * {c.points} END"
                )
            branches.append(f"WHEN {_quote(c.id)} THEN {raw}")
        return f"CASE category {' '.join(branches)} ELSE 0 END"

    def _list_expr(self, rule: ListRule, scope: _Scope) -> str:
        allowed = set(scope.categories(self.policy))
        conds = []
        for n, cond in enumerate(rule.when):
            if isinstance(cond, AnyOf):
                if allowed.intersection(cond.any_of):
                    conds.append(f"has_{_ident(rule.id)}_{n}{scope.suffix} = 1")
            else:
                conds.append(_in(f"grade{scope.suffix}", cond.grade_in))
        holds = " OR ".join(conds) if conds else "1 = 0"
        excluded = [self._list_expr(self.policy.list_by_id[e], scope) for e in rule.excludes]
        if not excluded:
            return f"({holds})"
        return f"(({holds}) AND NOT ({' OR '.join(excluded)}))"

    def select(self, *, restrict: bool) -> str:
        """SELECT subject_id, score, grade, lists, measures; `restrict` keeps pending subjects."""
        p = self.policy
        head = p.policy
        where_pending = f" AND r.subject_id IN ({PENDING})" if restrict else ""
        sums, flags = [], []
        for scope in self.scopes:
            if scope.contexts is None:
                sums.append("SUM(p) AS total")
            else:
                sums.append(
                    f"SUM(CASE WHEN {_in('category', scope.categories(p))} THEN p ELSE 0 END)"
                    f" AS total{scope.suffix}"
                )
            allowed = set(scope.categories(p))
            for rule in p.lists:
                for n, cond in enumerate(rule.when):
                    if isinstance(cond, AnyOf) and allowed.intersection(cond.any_of):
                        cats = [c for c in cond.any_of if c in allowed]
                        flags.append(
                            f"MAX(CASE WHEN {_in('category', cats)} THEN 1 ELSE 0 END)"
                            f" AS has_{_ident(rule.id)}_{n}{scope.suffix}"
                        )
        agg_cols = ",\n    ".join(sums + flags)
        flag_names = [f.rsplit(" AS ", 1)[1] for f in flags]
        score_cols = []
        for scope in self.scopes:
            raw = f"({head.base_score} + COALESCE(a.total{scope.suffix}, 0))"
            score_cols.append(
                f"{_clamp(raw, head.score_min, head.score_max)} AS score{scope.suffix}"
            )
        score_cols += [f"COALESCE(a.{name}, 0) AS {name}" for name in flag_names]
        grade_cols = []
        for scope in self.scopes:
            whens = " ".join(
                f"WHEN score{scope.suffix} >= {g.min} THEN {_quote(g.name)}" for g in p.grades
            )
            grade_cols.append(
                f"CASE {whens} ELSE {_quote(p.grades[-1].name)} END AS grade{scope.suffix}"
            )
        main = self.scopes[0]
        list_parts = [
            f"CASE WHEN {self._list_expr(rule, main)} THEN {_quote(rule.id + ',')} ELSE '' END"
            for rule in p.lists
        ]
        measure_parts = []
        for m in p.measures:
            scope = self._scope_for(m.contexts)
            trig = m.trigger
            if isinstance(trig, ListTrigger):
                trigger_sql = self._list_expr(p.list_by_id[trig.list], scope)
            else:
                trigger_sql = _in(f"grade{scope.suffix}", trig.grade_in)
            measure_parts.append(f"CASE WHEN {trigger_sql} THEN {_quote(m.id + ',')} ELSE '' END")
        lists_sql = _concat(list_parts)
        measures_sql = _concat(measure_parts)
        subject_filter = f"WHERE s.id IN ({PENDING})" if restrict else ""
        return f"""
WITH eff AS (
  SELECT r.subject_id, r.category, COUNT(*) AS n
  FROM records r
  WHERE r.revoked = {_false()} AND r.decided_on <= :t AND r.ends_on > :t
    AND (r.counts_from IS NULL OR r.counts_from <= :t){where_pending}
  GROUP BY r.subject_id, r.category
), pts AS (
  SELECT subject_id, category, {self._points()} AS p FROM eff
), agg AS (
  SELECT subject_id,
    {agg_cols}
  FROM pts GROUP BY subject_id
), sc AS (
  SELECT s.id AS subject_id,
    {", ".join(score_cols)}
  FROM subjects s LEFT JOIN agg a ON a.subject_id = s.id
  {subject_filter}
), gr AS (
  SELECT sc.*, {", ".join(grade_cols)} FROM sc
)
SELECT subject_id, score, grade,
  {lists_sql} AS lists,
  {measures_sql} AS measures
FROM gr
"""


def _false() -> str:
    return "false"


def _ident(value: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in value)


def _concat(parts: list[str]) -> str:
    if not parts:
        return "''"
    return f"RTRIM({' || '.join(parts)}, ',')"


def rescore_all(conn: Connection, policy: Policy, policy_version_id: int, as_of: date) -> int:
    """Recompute every subject's standing in one statement; returns the subjects scored."""
    sql = RescoreSql(policy).select(restrict=False)
    through = _max_record_id(conn)
    conn.execute(text("DELETE FROM standings"))
    result = conn.execute(
        text(
            "INSERT INTO standings (subject_id, score, grade, lists, measures, as_of, "
            "policy_version_id) SELECT subject_id, score, grade, lists, measures, :t, :pv "
            f"FROM ({sql}) AS fresh"
        ),
        {"t": dateparam(conn, as_of), "pv": policy_version_id},
    )
    _advance(conn, through, as_of)
    return int(result.rowcount or 0)


def rescore_pending(conn: Connection, policy: Policy, policy_version_id: int, as_of: date) -> int:
    """Recompute only the subjects with records filed since the last rescore."""
    state = conn.execute(
        text("SELECT scored_through, scored_as_of FROM register_state WHERE id = 1")
    ).first()
    through = int(state[0]) if state else 0
    newest = _max_record_id(conn)
    if newest <= through:
        return 0
    total = conn.execute(text("SELECT COUNT(*) FROM subjects")).scalar_one()
    backlog = newest - through
    if backlog * 4 >= total:  # most subjects are touched: one full pass is cheaper
        return rescore_all(conn, policy, policy_version_id, as_of)
    sql = RescoreSql(policy).select(restrict=True)
    params = {"t": dateparam(conn, as_of), "pv": policy_version_id, "through": through}
    result = conn.execute(
        text(
            "INSERT INTO standings (subject_id, score, grade, lists, measures, as_of, "
            "policy_version_id) SELECT subject_id, score, grade, lists, measures, :t, :pv "
            f"FROM ({sql}) AS fresh WHERE true "
            "ON CONFLICT (subject_id) DO UPDATE SET score = excluded.score, "
            "grade = excluded.grade, lists = excluded.lists, measures = excluded.measures, "
            "as_of = excluded.as_of, policy_version_id = excluded.policy_version_id"
        ),
        params,
    )
    _advance(conn, newest, as_of)
    return int(result.rowcount or 0)


def _max_record_id(conn: Connection) -> int:
    return int(conn.execute(text("SELECT COALESCE(MAX(id), 0) FROM records")).scalar_one())


def _advance(conn: Connection, through: int, as_of: date) -> None:
    updated = conn.execute(
        text("UPDATE register_state SET scored_through = :n, scored_as_of = :t WHERE id = 1"),
        {"n": through, "t": dateparam(conn, as_of)},
    )
    if not updated.rowcount:
        conn.execute(
            text(
                "INSERT INTO register_state (id, scored_through, scored_as_of) VALUES (1, :n, :t)"
            ),
            {"n": through, "t": dateparam(conn, as_of)},
        )


def lock_register(conn: Connection, *, exclusive: bool, authority_id: str | None = None) -> None:
    """Filers share the register lock; a rescore takes it alone (PostgreSQL; SQLite serialises).

    A filer also takes its authority's lock, so two filings of the same reference queue up
    and the second one sees the first as already stored.
    """
    if is_sqlite(conn):
        return
    mode = "" if exclusive else "_shared"
    conn.execute(text(f"SELECT pg_advisory_xact_lock{mode}(7276002)"))
    if authority_id is not None:
        conn.execute(text("SELECT pg_advisory_xact_lock(7276003, hashtext(:a))"),
                     {"a": authority_id})
