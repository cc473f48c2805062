"""List and measure history: periods and the measures change feed, kept on every rescore.

Every path that stores standings (the set-based rescore and the one-subject refresh) hands
the subjects whose lists or measures changed to `track`, in the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import bindparam, select, text, update
from sqlalchemy.engine import Connection

from credo.domain.policy import AnyOf, Policy
from credo.store import audit, repository
from credo.store.db import dateparam, is_sqlite
from credo.store.tables import list_periods, measure_events, measure_periods


def split(value: str | None) -> frozenset[str]:
    """The ids of a stored comma-joined lists or measures column."""
    return frozenset(item for item in (value or "").split(",") if item)


@dataclass(frozen=True, slots=True)
class Change:
    """One subject whose lists or measures differ from the stored standing."""

    subject_id: str
    grade: str
    lists_before: frozenset[str]
    lists_after: frozenset[str]
    measures_before: frozenset[str]
    measures_after: frozenset[str]

    @classmethod
    def of(
        cls, subject_id: str, grade: str, lists: tuple[str, str], measures: tuple[str, str]
    ) -> Change:
        """From stored (before, after) comma-joined columns."""
        return cls(
            subject_id,
            grade,
            split(lists[0]),
            split(lists[1]),
            split(measures[0]),
            split(measures[1]),
        )


def track(
    conn: Connection,
    policy: Policy,
    policy_version_id: int,
    as_of: date,
    now: datetime,
    changes: Iterable[Change],
) -> None:
    """Close and open list periods and measure periods, and append the feed's events."""
    left: list[dict[str, Any]] = []
    entered: list[dict[str, Any]] = []
    ended: list[tuple[str, str]] = []
    started: list[tuple[str, str]] = []
    for change in changes:
        for list_id in sorted(change.lists_before - change.lists_after):
            left.append({"s": change.subject_id, "l": list_id})
        for list_id in sorted(change.lists_after - change.lists_before):
            entered.append(
                {
                    "subject_id": change.subject_id,
                    "list_id": list_id,
                    "entered_on": as_of,
                    "grade": change.grade,
                    "records": "",
                    "policy_version_id": policy_version_id,
                }
            )
        ended += [
            (change.subject_id, m) for m in sorted(change.measures_before - change.measures_after)
        ]
        started += [
            (change.subject_id, m) for m in sorted(change.measures_after - change.measures_before)
        ]
    if left:
        conn.execute(
            update(list_periods)
            .where(
                list_periods.c.subject_id == bindparam("s"),
                list_periods.c.list_id == bindparam("l"),
                list_periods.c.left_on.is_(None),
            )
            .values(left_on=as_of),
            left,
        )
    if entered:
        first = _next_id(conn, "list_periods", "id")
        conn.execute(list_periods.insert(), entered)
        _fill_causes(conn, policy, as_of, first, {row["list_id"] for row in entered})
    if ended or started:
        _measures(conn, policy, policy_version_id, as_of, now, ended, started)


def _next_id(conn: Connection, table: str, column: str) -> int:
    return int(
        conn.execute(text(f"SELECT COALESCE(MAX({column}), 0) + 1 FROM {table}")).scalar_one()
    )


def _fill_causes(
    conn: Connection, policy: Policy, as_of: date, first_id: int, list_ids: set[str]
) -> None:
    """Store, for each new period, the effective records of the list's `any_of` categories."""
    from credo.store.rescore import RescoreSql  # rescore imports this module

    effective = RescoreSql(policy).effective()
    agg = "group_concat(r.id, ',')" if is_sqlite(conn) else "string_agg(CAST(r.id AS TEXT), ',')"
    for list_id in sorted(list_ids):
        rule = policy.list_by_id.get(list_id)
        if rule is None:
            continue
        categories = sorted(
            {c for cond in rule.when if isinstance(cond, AnyOf) for c in cond.any_of}
        )
        if not categories:
            continue
        quoted = ", ".join("'" + c.replace("'", "''") + "'" for c in categories)
        conn.execute(
            text(
                f"UPDATE list_periods SET records = COALESCE((SELECT {agg} FROM records r "
                f"WHERE r.subject_id = list_periods.subject_id AND r.category IN ({quoted}) "
                f"AND {effective}), '') WHERE id >= :first AND list_id = :list"
            ),
            {"first": first_id, "list": list_id, "t": dateparam(conn, as_of)},
        )


def _measures(
    conn: Connection,
    policy: Policy,
    policy_version_id: int,
    as_of: date,
    now: datetime,
    ended: Sequence[tuple[str, str]],
    started: Sequence[tuple[str, str]],
) -> None:
    audit.lock_chain(conn)  # events become visible in seq order (see tables.measure_events)
    authority = {m.id: m.authority for m in policy.measures}
    unknown = sorted({m for _, m in ended if m not in authority})
    if unknown:  # measures the new policy dropped: their authority is on the open period
        rows = conn.execute(
            select(measure_periods.c.measure_id, measure_periods.c.authority_id)
            .where(measure_periods.c.measure_id.in_(unknown))
            .distinct()
        )
        authority.update({row.measure_id: row.authority_id for row in rows})
    events: list[dict[str, Any]] = []
    if ended:
        conn.execute(
            update(measure_periods)
            .where(
                measure_periods.c.subject_id == bindparam("s"),
                measure_periods.c.measure_id == bindparam("m"),
                measure_periods.c.ended_on.is_(None),
            )
            .values(ended_on=as_of),
            [{"s": s, "m": m} for s, m in ended],
        )
        events += [_event(s, m, authority.get(m, ""), "end") for s, m in ended]
    if started:
        conn.execute(
            measure_periods.insert(),
            [
                {
                    "subject_id": s,
                    "measure_id": m,
                    "authority_id": authority[m],
                    "started_on": as_of,
                }
                for s, m in started
            ],
        )
        events += [_event(s, m, authority[m], "start") for s, m in started]
    for event in events:
        event.update(on_day=as_of, at=now, policy_version_id=policy_version_id)
    conn.execute(measure_events.insert(), events)


def _event(subject_id: str, measure_id: str, authority_id: str, change: str) -> dict[str, Any]:
    return {
        "subject_id": subject_id,
        "measure_id": measure_id,
        "authority_id": authority_id,
        "change": change,
    }


_CHANGED = (
    "CREATE TEMP TABLE credo_moved AS "
    "SELECT f.subject_id, f.grade, ',' || COALESCE(s.lists, '') || ',' AS old_lists, "
    "',' || f.lists || ',' AS new_lists, ',' || COALESCE(s.measures, '') || ',' AS old_measures, "
    "',' || f.measures || ',' AS new_measures "
    "FROM credo_fresh f LEFT JOIN standings s ON s.subject_id = f.subject_id "
    "WHERE COALESCE(s.lists, '') <> f.lists OR COALESCE(s.measures, '') <> f.measures"
)


def _has(column: str, item_id: str) -> str:
    # Ids are policy identifiers (letters, digits, . _ : -): escape LIKE's wildcard `_`.
    return f"{column} LIKE '%,{item_id.replace('_', '!_')},%' ESCAPE '!'"


def track_fresh(
    conn: Connection, policy: Policy, policy_version_id: int, as_of: date, now: datetime
) -> None:
    """`track` set-based, for a rescore whose new standings are in `credo_fresh`.

    Leaves the temp table `credo_moved` (the subjects whose lists or measures changed, with
    both sides as ",a,b,") for the caller's notices; the caller drops it.
    """
    conn.execute(text("DROP TABLE IF EXISTS credo_moved"))
    conn.execute(text(_CHANGED))
    # Autovacuum never analyzes a temporary table; without statistics the planner takes
    # the changed subjects for a handful and loops over them (see rescore._rescore).
    repository.refresh_statistics(conn, "credo_moved")
    t = {"t": dateparam(conn, as_of), "pv": policy_version_id, "now": now}
    first = _next_id(conn, "list_periods", "id")
    for rule in policy.lists:
        entered = f"{_has('new_lists', rule.id)} AND NOT {_has('old_lists', rule.id)}"
        left = f"{_has('old_lists', rule.id)} AND NOT {_has('new_lists', rule.id)}"
        conn.execute(
            text(
                "UPDATE list_periods SET left_on = :t WHERE list_id = :l AND left_on IS NULL "
                f"AND subject_id IN (SELECT subject_id FROM credo_moved WHERE {left})"
            ),
            {**t, "l": rule.id},
        )
        conn.execute(
            text(
                "INSERT INTO list_periods (subject_id, list_id, entered_on, grade, records, "
                "policy_version_id) SELECT subject_id, :l, :t, grade, '', :pv FROM credo_moved "
                f"WHERE {entered} ORDER BY subject_id"
            ),
            {**t, "l": rule.id},
        )
    known_lists = [rule.id for rule in policy.lists]
    conn.execute(  # lists the policy no longer has end for everyone who was on them
        text(
            "UPDATE list_periods SET left_on = :t WHERE left_on IS NULL AND subject_id IN "
            "(SELECT subject_id FROM credo_moved)"
            + (
                f" AND list_id NOT IN ({', '.join(_q(i) for i in known_lists)})"
                if known_lists
                else ""
            )
        ),
        t,
    )
    _fill_causes(conn, policy, as_of, first, set(known_lists))
    audit.lock_chain(conn)  # events become visible in seq order (see tables.measure_events)
    ended = "UPDATE measure_periods SET ended_on = :t WHERE ended_on IS NULL AND subject_id IN "
    for measure in policy.measures:
        gone = f"{_has('old_measures', measure.id)} AND NOT {_has('new_measures', measure.id)}"
        came = f"{_has('new_measures', measure.id)} AND NOT {_has('old_measures', measure.id)}"
        params = {**t, "m": measure.id, "a": measure.authority}
        conn.execute(
            text(
                "INSERT INTO measure_events (authority_id, measure_id, subject_id, change, "
                "on_day, at, policy_version_id) SELECT authority_id, measure_id, subject_id, "
                "'end', :t, :now, :pv FROM measure_periods WHERE measure_id = :m "
                "AND ended_on IS NULL AND subject_id IN "
                f"(SELECT subject_id FROM credo_moved WHERE {gone}) ORDER BY subject_id"
            ),
            params,
        )
        conn.execute(
            text(f"{ended}(SELECT subject_id FROM credo_moved WHERE {gone}) AND measure_id = :m"),
            params,
        )
        conn.execute(
            text(
                "INSERT INTO measure_periods (subject_id, measure_id, authority_id, started_on) "
                f"SELECT subject_id, :m, :a, :t FROM credo_moved WHERE {came} "
                "ORDER BY subject_id"
            ),
            params,
        )
        conn.execute(
            text(
                "INSERT INTO measure_events (authority_id, measure_id, subject_id, change, "
                "on_day, at, policy_version_id) SELECT :a, :m, subject_id, 'start', :t, :now, "
                f":pv FROM credo_moved WHERE {came} ORDER BY subject_id"
            ),
            params,
        )
    known = ", ".join(_q(m.id) for m in policy.measures) or "''"
    stale = (  # measures the policy no longer has end for everyone under them
        "FROM measure_periods WHERE ended_on IS NULL AND subject_id IN "
        f"(SELECT subject_id FROM credo_moved) AND measure_id NOT IN ({known})"
    )
    conn.execute(
        text(
            "INSERT INTO measure_events (authority_id, measure_id, subject_id, change, on_day, "
            f"at, policy_version_id) SELECT authority_id, measure_id, subject_id, 'end', :t, "
            f":now, :pv {stale} ORDER BY subject_id, measure_id"
        ),
        t,
    )
    conn.execute(
        text(f"{ended}(SELECT subject_id FROM credo_moved) AND measure_id NOT IN ({known})"),
        t,
    )


def _q(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
