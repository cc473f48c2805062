"""Set-based rescoring: one SQL text, generated from the policy, scores every subject.

The text is portable (SQLite, PostgreSQL, DuckDB, Spark): CASE instead of LEAST/GREATEST, `||`
for strings; Spark only trims differently. It must agree with `credo.domain.scoring`;
property tests hold the two together.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from itertools import groupby
from typing import Any, ClassVar

from sqlalchemy import text
from sqlalchemy.engine import Connection

from credo.domain.guard import Context
from credo.domain.policy import AnyOf, ListRule, ListTrigger, Policy
from credo.store import memberships, repository
from credo.store.db import dateparam, is_sqlite

SMALL_POINTS = 1_000  # points multiplied as INTEGER (see RescoreSql._points)


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _in(column: str, values: Sequence[str], *, quote: bool = True) -> str:
    if not values:
        return "1 = 0"
    return f"{column} IN ({', '.join(_quote(v) if quote else v for v in values)})"


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

    def _code(self) -> str:
        """Each category's position in the policy, as a small integer (-1: no longer in it).

        The later steps compare these integers instead of category names: on PostgreSQL the
        comparisons of names were half the single-threaded aggregation by subject.
        """
        branches = " ".join(
            f"WHEN {_quote(c.id)} THEN {n}" for n, c in enumerate(self.policy.categories)
        )
        return f"CASE r.category {branches} ELSE -1 END"

    def _codes(self, categories: Sequence[str]) -> str:
        position = {c.id: n for n, c in enumerate(self.policy.categories)}
        return _in("k", [str(position[c]) for c in categories], quote=False)

    def _points(self) -> str:
        """A (subject, category) group's points, capped.

        The counts are INTEGER, so the products and their sums stay integers: PostgreSQL sums
        BIGINT into NUMERIC, much slower to add and compare (a full rescore of 10M records
        spent seconds on it). With points up to `SMALL_POINTS` a product passes the INTEGER
        range only beyond two million effective records of one category for one person (the
        database then refuses the statement); larger points are multiplied as BIGINT.
        """
        branches = []
        for n, c in enumerate(self.policy.categories):
            count = "n" if abs(c.points) <= SMALL_POINTS else "CAST(n AS BIGINT)"
            raw = f"{count} * {c.points}"
            if c.cap is not None:
                bound = "<" if c.cap < 0 else ">"
                raw = f"CASE WHEN {raw} {bound} {c.cap} THEN {c.cap} ELSE {raw} END"
            branches.append(f"WHEN {n} THEN {raw}")
        return f"CASE k {' '.join(branches)} ELSE 0 END"

    def _grade_in(self, scope: _Scope, names: Sequence[str], dialect: str) -> str:
        """The condition that the scope's grade is one of `names`.

        DuckDB tests the score against the bands' bounds instead: the grade of each measure's
        scope is then never built as a string (a tenth of the preview's scoring at 10M).
        """
        if dialect != "duckdb":
            return _in(f"grade{scope.suffix}", names)
        grades = self.policy.grades
        score = f"score{scope.suffix}"
        ranges = []
        # each run of neighbouring wanted bands is one range, bounded as the grade's CASE
        # is: the first band whose min the score reaches (the last band takes the rest)
        for wanted, run in groupby(enumerate(grades), key=lambda band: band[1].name in names):
            if not wanted:
                continue
            bands = [n for n, _ in run]
            first, last = bands[0], bands[-1]
            bounds = []
            if last < len(grades) - 1:
                bounds.append(f"{score} >= {grades[last].min}")
            if first > 0:
                bounds.append(f"{score} < {grades[first - 1].min}")
            ranges.append(f"({' AND '.join(bounds)})" if bounds else "1 = 1")
        return f"({' OR '.join(ranges)})" if ranges else "1 = 0"

    def _list_expr(self, rule: ListRule, scope: _Scope, dialect: str) -> str:
        allowed = set(scope.categories(self.policy))
        conds = []
        for n, cond in enumerate(rule.when):
            if isinstance(cond, AnyOf):
                if allowed.intersection(cond.any_of):
                    conds.append(f"has_{_ident(rule.id)}_{n}{scope.suffix} = 1")
            else:
                conds.append(self._grade_in(scope, cond.grade_in, dialect))
        holds = " OR ".join(conds) if conds else "1 = 0"
        excluded = [
            self._list_expr(self.policy.list_by_id[e], scope, dialect) for e in rule.excludes
        ]
        if not excluded:
            return f"({holds})"
        return f"(({holds}) AND NOT ({' OR '.join(excluded)}))"

    def effective(self, *, ends: str = "r.ends_on", due: str = "c.due_on") -> str:
        """The condition for a record `r` to count on day :t (DESIGN 5.1)."""
        suspending = [c.id for c in self.policy.categories if c.suspend_while_disputed]
        return f"""r.revoked = {_false()} AND r.decided_on <= :t AND {ends} > :t
    AND (r.counts_from IS NULL OR r.counts_from <= :t)
    AND (r.counts_until IS NULL OR r.counts_until > :t)
    AND r.id NOT IN (
      SELECT c.record_id FROM cases c
      WHERE c.kind = 'objection' AND c.record_id IS NOT NULL AND c.filed_on <= :t
        AND (c.decided_on IS NULL OR c.decided_on > :t)
        AND ({due} <= :t OR {_in("c.category", suspending)}))"""

    def select(
        self,
        subjects: str | None = None,
        *,
        dialect: str = "postgresql",
        ends: str = "r.ends_on",
        due: str = "c.due_on",
        bits: Bits | None = None,
        carry: Sequence[str] = (),
        next_end: bool = False,
    ) -> str:
        """SELECT subject_id, score, grade, lists, measures for every subject, or for the
        subjects the `subjects` subquery returns.

        `ends` and `due` are the SQL for a record's end and an objection's due day: the stored
        columns, or expressions deriving them from another policy's durations (a preview).
        With `bits` (DuckDB), lists and measures are bit masks; the subjects' `carry` columns
        follow them. With `next_end`, a last column `next_end`: the first day after :t on
        which a counted record stops counting (its end, or the day a newer version replaces
        it), NULL when none counts.
        """
        p = self.policy
        head = p.policy
        where_pending = f" AND r.subject_id IN ({subjects})" if subjects else ""
        sums = []
        for scope in self.scopes:
            if scope.contexts is None:
                sums.append("SUM(p) AS total")
            else:
                sums.append(
                    f"SUM(CASE WHEN {self._codes(scope.categories(p))} THEN p ELSE 0 END)"
                    f" AS total{scope.suffix}"
                )
        flag_aggs, flag_cols = self._flags(dialect)
        # With next_end: each effective record's end, the first per group, then per subject.
        record_end = group_end = carry_end = ""
        end_aggs: list[str] = []
        end_cols: list[str] = []
        if next_end:
            record_end = (
                f", CASE WHEN r.counts_until IS NOT NULL AND r.counts_until < {ends} "
                f"THEN r.counts_until ELSE {ends} END AS ends_at"
            )
            group_end, carry_end = ", MIN(ends_at) AS first_end", ", first_end"
            end_aggs, end_cols = ["MIN(first_end) AS next_end"], ["a.next_end"]
        agg_cols = ",\n    ".join(sums + flag_aggs + end_aggs)
        score_cols = []
        for scope in self.scopes:
            raw = f"({head.base_score} + COALESCE(a.total{scope.suffix}, 0))"
            score_cols.append(
                f"{_clamp(raw, head.score_min, head.score_max)} AS score{scope.suffix}"
            )
        score_cols += flag_cols + end_cols
        score_cols += [f"s.{column}" for column in carry]
        grade_cols = []
        # DuckDB needs only the subject's own grade (see _grade_in)
        for scope in self.scopes[:1] if dialect == "duckdb" else self.scopes:
            whens = " ".join(
                f"WHEN score{scope.suffix} >= {g.min} THEN {_quote(g.name)}" for g in p.grades
            )
            grade_cols.append(
                f"CASE {whens} ELSE {_quote(p.grades[-1].name)} END AS grade{scope.suffix}"
            )
        main = self.scopes[0]
        lists = [(rule.id, self._list_expr(rule, main, dialect)) for rule in p.lists]
        measures = []
        for m in p.measures:
            scope = self._scope_for(m.contexts)
            trig = m.trigger
            if isinstance(trig, ListTrigger):
                trigger_sql = self._list_expr(p.list_by_id[trig.list], scope, dialect)
            else:
                trigger_sql = self._grade_in(scope, trig.grade_in, dialect)
            measures.append((m.id, trigger_sql))
        if bits is None:
            lists_sql, measures_sql = _names(lists, dialect), _names(measures, dialect)
        else:
            lists_sql, measures_sql = _mask(lists, bits.lists), _mask(measures, bits.measures)
        tail = [*carry, "next_end"] if next_end else list(carry)
        carried = "".join(f", {column}" for column in tail)
        subject_filter = f"WHERE s.id IN ({subjects})" if subjects else ""
        # A full rescore reads every record once, in table order: SQLite would otherwise
        # walk an index and fetch the rows one by one in random order.
        scan = " NOT INDEXED" if dialect == "sqlite" and not subjects else ""
        # PostgreSQL would inline the scores into every grade, list and measure expression
        # that reads them, evaluating each clamp many times per subject.
        fence = " MATERIALIZED" if dialect == "postgresql" else ""
        return f"""
WITH eff AS (
  SELECT subject_id, k, CAST(COUNT(*) AS INTEGER) AS n{group_end} FROM (
    SELECT r.subject_id, {self._code()} AS k{record_end}
    FROM records r{scan}
    WHERE {self.effective(ends=ends, due=due)}{where_pending}
  ) e
  GROUP BY subject_id, k
), pts AS (
  SELECT subject_id, k, {self._points()} AS p{carry_end} FROM eff
), agg AS (
  SELECT subject_id,
    {agg_cols}
  FROM pts GROUP BY subject_id
), sc AS{fence} (
  SELECT s.id AS subject_id,
    {", ".join(score_cols)}
  FROM subjects s LEFT JOIN agg a ON a.subject_id = s.id
  {subject_filter}
), gr AS (
  SELECT sc.*, {", ".join(grade_cols)} FROM sc
)
SELECT subject_id, score, grade,
  {lists_sql} AS lists,
  {measures_sql} AS measures{carried}
FROM gr
"""

    def _flags(self, dialect: str) -> tuple[list[str], list[str]]:
        """The aggregates that find whether a subject has a record of a list's categories
        (per scope), and the columns `has_<list>_<n><scope>` (1 or 0) made of them.

        DuckDB ORs one mask per record group (bit n: the n-th flag) instead of taking one
        MAX per flag: each aggregate costs the grouping by subject about as much again.
        """
        p = self.policy
        flags: list[tuple[str, str]] = []  # (name, condition on k)
        for scope in self.scopes:
            allowed = set(scope.categories(p))
            for rule in p.lists:
                for n, cond in enumerate(rule.when):
                    if isinstance(cond, AnyOf) and allowed.intersection(cond.any_of):
                        cats = [c for c in cond.any_of if c in allowed]
                        flags.append(
                            (f"has_{_ident(rule.id)}_{n}{scope.suffix}", self._codes(cats))
                        )
        if dialect != "duckdb" or not 1 < len(flags) <= Bits.LIMIT:
            aggs = [f"MAX(CASE WHEN {codes} THEN 1 ELSE 0 END) AS {name}" for name, codes in flags]
            return aggs, [f"COALESCE(a.{name}, 0) AS {name}" for name, _ in flags]
        mask = " + ".join(
            f"CASE WHEN {codes} THEN {1 << n} ELSE 0 END" for n, (_, codes) in enumerate(flags)
        )
        columns = [
            f"CAST(COALESCE((a.credo_flags >> {n}) & 1, 0) AS INTEGER) AS {name}"
            for n, (name, _) in enumerate(flags)
        ]
        return [f"BIT_OR(CAST({mask} AS BIGINT)) AS credo_flags"], columns


@dataclass(frozen=True)
class Bits:
    """Lists and measures as bit masks (DuckDB's preview): bit n of `lists` is set when
    `lists[n]` holds, and likewise for measures. Two scorings compare as integers when
    their ids share one numbering; masks cost far less to build, join and group than the
    comma-separated names."""

    lists: tuple[str, ...]
    measures: tuple[str, ...]

    LIMIT: ClassVar[int] = 62  # bits of a BIGINT that shift without reaching its sign

    def fits(self) -> bool:
        """Whether both numberings fit in a mask."""
        return len(self.lists) <= self.LIMIT and len(self.measures) <= self.LIMIT

    def names(self, mask: int, kind: str, order: Sequence[str]) -> str:
        """The comma-separated ids of `mask` (kind "lists" or "measures"), in `order`."""
        ids = self.lists if kind == "lists" else self.measures
        held = {ident for n, ident in enumerate(ids) if (mask >> n) & 1}
        return ",".join(ident for ident in order if ident in held)


def _false() -> str:
    return "false"


def _ident(value: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in value)


def _names(held: list[tuple[str, str]], dialect: str) -> str:
    """The ids whose condition holds, comma-separated, in order."""
    if not held:
        return "''"
    parts = " || ".join(
        f"CASE WHEN {cond} THEN {_quote(ident + ',')} ELSE '' END" for ident, cond in held
    )
    if dialect == "spark":  # Spark's two-argument RTRIM takes the characters first
        return f"TRIM(TRAILING ',' FROM {parts})"
    return f"RTRIM({parts}, ',')"


def _mask(held: list[tuple[str, str]], numbering: Sequence[str]) -> str:
    """The ids whose condition holds, as a BIGINT with bit `numbering.index(id)` set."""
    if not held:
        return "CAST(0 AS BIGINT)"
    parts = " + ".join(
        f"CASE WHEN {cond} THEN {1 << numbering.index(ident)} ELSE 0 END" for ident, cond in held
    )
    return f"CAST({parts} AS BIGINT)"


_UPSERT = (
    "INSERT INTO standings (subject_id, score, grade, lists, measures, as_of, "
    "policy_version_id, next_end) SELECT subject_id, score, grade, lists, measures, :t, :pv, "
    "next_end FROM credo_fresh WHERE true "
    "ON CONFLICT (subject_id) DO UPDATE SET score = excluded.score, "
    "grade = excluded.grade, lists = excluded.lists, measures = excluded.measures, "
    "as_of = excluded.as_of, policy_version_id = excluded.policy_version_id, "
    "next_end = excluded.next_end"
)
# A notice for every subject whose lists or measures changed (memberships left them in
# credo_moved as ",a,b,"); before/after hold "lists|measures" and the text is rendered when
# the notice is read or sent.
_NOTICES = (
    "INSERT INTO notices (subject_id, kind, before, after, created_at, status, attempts) "
    "SELECT subject_id, 'standing.changed', "
    "substr(old_lists, 2, length(old_lists) - 2) || '|' "
    "|| substr(old_measures, 2, length(old_measures) - 2), "
    "substr(new_lists, 2, length(new_lists) - 2) || '|' "
    "|| substr(new_measures, 2, length(new_measures) - 2), "
    ":now, 'pending', 0 FROM credo_moved ORDER BY subject_id"
)


def rescore(
    conn: Connection,
    policy: Policy,
    policy_version_id: int,
    as_of: date,
    now: datetime,
    *,
    scope: str | None = None,
    params: dict[str, Any] | None = None,
    notify: Callable[[Connection], None] | None = None,
    computed: bool = False,
) -> int:
    """Recompute and store standings set-based, writing a notice for every changed membership.

    `scope` is a subquery of subject ids (None: every subject); `params` are its parameters.
    `notify` replaces the membership notices: it runs while `credo_fresh` holds the new
    standings and `standings` the old ones (a policy activation explains every change).
    `computed`: the temp table `credo_fresh` already holds the new standings (another engine
    computed them); only the storing steps run.
    """
    with _rescore_cache(conn):
        return _rescore(
            conn, policy, policy_version_id, as_of, now, scope, params, notify, computed
        )


# What the storing steps join the changed subjects against (see refresh_stale_statistics).
MEMBERSHIP_TABLES = ("list_periods", "measure_periods")
RESCORE_CACHE_KIB = 16_384  # SQLite's page cache while rescoring (see _rescore_cache)


@contextmanager
def _rescore_cache(conn: Connection) -> Iterator[None]:
    """SQLite: a 16 MB page cache while rescoring, then the connection's own again.

    The cache size also bounds each sorter's memory (a sorter holds up to that much before
    it spills to a temporary file), and the scoring statement sorts several times: a first
    rescore of 1M subjects after an import peaked at 275 MB of RSS with the 64 MB the import
    writes with, and at 126 MB with 16 MB, no slower.
    """
    if not is_sqlite(conn):
        yield
        return
    before = int(conn.exec_driver_sql("PRAGMA cache_size").scalar_one())
    conn.exec_driver_sql(f"PRAGMA cache_size=-{RESCORE_CACHE_KIB}")
    try:
        yield
    finally:
        conn.exec_driver_sql(f"PRAGMA cache_size={before}")


def _rescore(
    conn: Connection,
    policy: Policy,
    policy_version_id: int,
    as_of: date,
    now: datetime,
    scope: str | None,
    params: dict[str, Any] | None,
    notify: Callable[[Connection], None] | None,
    computed: bool,
) -> int:
    values = {"t": dateparam(conn, as_of), "pv": policy_version_id, **(params or {})}
    # The scoring query runs as CREATE TABLE AS, which PostgreSQL may run in parallel; a
    # utility statement takes no bind parameters, so the values (dates and ids credo made)
    # are written in as literals.
    if not is_sqlite(conn):
        # Compiling the wide scoring expressions costs more than it saves (4 of 6.5 s on a
        # 2M-record register).
        conn.execute(text("SET LOCAL jit = off"))
    if not computed:
        scoring = RescoreSql(policy).select(scope, dialect=conn.dialect.name, next_end=True)
        sql = _inline(scoring, values)
        conn.execute(text("DROP TABLE IF EXISTS credo_fresh"))
        conn.execute(text(f"CREATE TEMP TABLE credo_fresh AS {sql}"))
    # Planned without statistics, the membership steps walked list_periods once per changed
    # subject (a rescore on a later day, 42k of 200k subjects moving: over 100 s in one
    # UPDATE instead of 0.4): see refresh_stale_statistics.
    repository.refresh_stale_statistics(conn, *MEMBERSHIP_TABLES)
    memberships.track_fresh(conn, policy, policy_version_id, as_of, now)
    if notify is None:
        conn.execute(text(_NOTICES), {"now": now})
    else:
        notify(conn)
    conn.execute(text("DROP TABLE credo_moved"))
    if scope is None:
        conn.execute(text("DELETE FROM standings" if is_sqlite(conn) else "TRUNCATE standings"))
        with _indexes_built_after(conn, "standings"):
            result = conn.execute(
                text(
                    "INSERT INTO standings (subject_id, score, grade, lists, measures, as_of, "
                    "policy_version_id, next_end) SELECT subject_id, score, grade, lists, "
                    "measures, :t, :pv, next_end FROM credo_fresh"
                ),
                values,
            )
    else:
        result = conn.execute(text(_UPSERT), values)
    conn.execute(text("DROP TABLE credo_fresh"))
    return int(result.rowcount or 0)


@contextmanager
def _indexes_built_after(conn: Connection, table: str) -> Iterator[None]:
    """PostgreSQL: the emptied `table`'s keys and indexes dropped while it is filled, then
    built again, each as it was (a partitioned table's on every partition). Building an
    index from all the rows sorts them once: 1M standings went in with their two indexes in
    2.5 s, and in 0.7 s plus 0.9 s for building both after. In the filling transaction, so
    nobody sees the table without them (TRUNCATE locks it alone until then)."""
    found = {"relation": table}
    owner = (
        "SELECT pg_has_role(relowner, 'USAGE') FROM pg_class "
        "WHERE oid = CAST(:relation AS regclass)"
    )
    if is_sqlite(conn) or not conn.execute(text(owner), found).scalar():
        yield  # SQLite, or a role that may fill the table but not alter it
        return
    keys = conn.execute(
        text(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = CAST(:relation AS regclass) AND contype IN ('p', 'u') "
            "ORDER BY conname"
        ),
        found,
    ).all()
    indexes = conn.execute(
        text(
            "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x "
            "JOIN pg_class i ON i.oid = x.indexrelid "
            "WHERE x.indrelid = CAST(:relation AS regclass) AND NOT EXISTS "
            "(SELECT 1 FROM pg_constraint c WHERE c.conindid = i.oid) ORDER BY i.relname"
        ),
        found,
    ).all()
    for name, _ in keys:
        conn.execute(text(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"'))
    for name, _ in indexes:
        conn.execute(text(f'DROP INDEX "{name}"'))
    yield
    for name, definition in keys:
        conn.execute(text(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}'))
    for _, definition in indexes:
        # a partitioned table's index is defined ON ONLY the parent: built on every part
        conn.execute(text(definition.replace(" ON ONLY ", " ON ", 1)))


def _inline(sql: str, values: dict[str, Any]) -> str:
    """Replace :name parameters by literals; only for dates and integers credo produced."""
    for name in sorted(values, key=len, reverse=True):
        value = values[name]
        if isinstance(value, bool) or not isinstance(value, int | str | date):
            raise TypeError(f"cannot inline {name}={value!r}")
        if isinstance(value, int):
            literal = str(value)
        else:
            text_ = value.isoformat() if isinstance(value, date) else value
            if not all(ch.isdigit() or ch == "-" for ch in text_):
                raise TypeError(f"cannot inline {name}={value!r}")
            literal = f"'{text_}'" if isinstance(value, str) else f"DATE '{text_}'"
        # A parameter is never inside an id: ids are quoted and start with a letter or digit.
        sql = re.sub(rf"(?<![\w:.'-]):{name}\b", literal, sql)
    return sql


def rescore_all(
    conn: Connection,
    policy: Policy,
    policy_version_id: int,
    as_of: date,
    now: datetime,
    *,
    notify: Callable[[Connection], None] | None = None,
    computed: bool = False,
) -> int:
    """Recompute every subject's standing (or store `credo_fresh`: see `rescore`)."""
    through = _max_record_id(conn)
    count = rescore(conn, policy, policy_version_id, as_of, now, notify=notify, computed=computed)
    _advance(conn, through, as_of)
    return count


# Subjects whose standing may differ between the day standings were stored (:since) and
# :t: new records since the watermark, counted records that stopped counting (the stored
# standing's `next_end`, always after :since), superseded versions, objections that fell
# due. Each branch is served by an index.
CATCH_UP = (
    "SELECT subject_id FROM records WHERE id > :through "
    "UNION SELECT subject_id FROM standings WHERE next_end > :since AND next_end <= :t "
    "UNION SELECT subject_id FROM records WHERE counts_until > :since AND counts_until <= :t "
    "UNION SELECT subject_id FROM cases WHERE kind = 'objection' AND due_on > :since "
    "AND due_on <= :t"
)


def catch_up(
    conn: Connection, policy: Policy, policy_version_id: int, as_of: date, now: datetime
) -> int:
    """Bring stored standings from their day and watermark to `as_of`, rescoring only the
    subjects that can have changed (new records, ends, objections falling due)."""
    state = conn.execute(
        text("SELECT scored_through, scored_as_of FROM register_state WHERE id = 1")
    ).first()
    newest = _max_record_id(conn)
    if state is None or state.scored_as_of is None:
        return rescore_all(conn, policy, policy_version_id, as_of, now)
    through = int(state.scored_through)
    since = state.scored_as_of
    since = date.fromisoformat(since) if isinstance(since, str) else since
    if as_of < since:  # going back in time: everything may differ
        return rescore_all(conn, policy, policy_version_id, as_of, now)
    if newest <= through and as_of == since:
        return 0
    total = conn.execute(text("SELECT COUNT(*) FROM subjects")).scalar_one()
    if (newest - through) * 4 >= total:  # most subjects are touched: one full pass is cheaper
        return rescore_all(conn, policy, policy_version_id, as_of, now)
    params = {"through": through, "since": dateparam(conn, since)}
    count = rescore(conn, policy, policy_version_id, as_of, now, scope=CATCH_UP, params=params)
    _advance(conn, newest, as_of)
    return count


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


REGISTER_LOCK = 7276002  # PostgreSQL advisory lock: filers share it, a rescore takes it alone


def hold_register_shared(conn: Connection, hold: bool) -> None:
    """PostgreSQL: take (`hold`) or give back the register lock, shared, for the connection's
    session rather than one transaction: a long filer keeps rescores out between its
    transactions. The connection must not go back to a pool while it holds it."""
    if not is_sqlite(conn):
        verb = "lock" if hold else "unlock"
        conn.execute(text(f"SELECT pg_advisory_{verb}_shared({REGISTER_LOCK})"))


def lock_register(conn: Connection, *, exclusive: bool, authority_id: str | None = None) -> None:
    """Filers share the register lock; a rescore takes it alone (PostgreSQL; SQLite serialises).

    A filer also takes its authority's lock, so two filings of the same reference queue up
    and the second one sees the first as already stored.
    """
    if is_sqlite(conn):
        return
    mode = "" if exclusive else "_shared"
    conn.execute(text(f"SELECT pg_advisory_xact_lock{mode}({REGISTER_LOCK})"))
    if authority_id is not None:
        conn.execute(
            text("SELECT pg_advisory_xact_lock(7276003, hashtext(:a))"), {"a": authority_id}
        )
