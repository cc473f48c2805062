"""The public register: published records only, by the rules of DESIGN 5.7.

A record is shown on day t when its category has `publish_for`, from `decided_on +
publication_delay` until the earlier of `decided_on + publish_for` and the day it stops
being effective (expired, repaired, revoked, superseded by a correction), and never while
an objection to it is open. An entry shows the name, authority, category, decision date,
legal basis and reference: nothing else (no subject id, no summary, no amount).
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from sqlalchemy import text

from credo.domain.errors import NotFoundError, Problem, ValidationError
from credo.domain.policy import AnyOf, Policy
from credo.services.register import Register
from credo.store.dates import add_duration_sql
from credo.store.db import dateparam
from credo.store.rescore import RescoreSql

MAX_PAGE = 100
SORTS = {
    "name": "s.name",
    "decided_on": "r.decided_on",
    "authority": "r.authority_id",
    "category": "r.category",
    "reference": "r.reference",
}
_TIES = "s.name, r.decided_on DESC, r.authority_id, r.reference"


# The distinct authorities of `records`, walked along the unique index's first column (a
# loose index scan): one probe per authority, however many records each filed.
_FILERS = (
    "WITH RECURSIVE f(id) AS (SELECT MIN(authority_id) FROM records "
    "UNION ALL SELECT (SELECT MIN(r.authority_id) FROM records r WHERE r.authority_id > f.id) "
    "FROM f WHERE f.id IS NOT NULL) SELECT id FROM f WHERE id IS NOT NULL"
)


def _order(sort: str, direction: str, *, outer: bool = False) -> str:
    """ORDER BY for an allowed sort key and direction; ties always break the same way.

    `outer` names the columns of a union of `_COLUMNS` selects instead of their tables'.
    """
    if sort not in SORTS or direction not in ("asc", "desc"):
        problems = []
        if sort not in SORTS:
            problems.append(Problem("sort", f"one of {', '.join(SORTS)}"))
        if direction not in ("asc", "desc"):
            problems.append(Problem("dir", "asc or desc"))
        raise ValidationError("bad sort order", problems)
    clause = f"ORDER BY {SORTS[sort]} {direction.upper()}, {_TIES}"
    if outer:  # the union's columns carry the same names, under the alias u
        clause = re.sub(r"\b[sr]\.", "u.", clause)
    return clause


def published_condition(policy: Policy, dialect: str) -> str:
    """SQL: record `r` is on the public register on day :t."""
    published = [c for c in policy.categories if c.publish_for is not None]
    if not published:
        return "1 = 0"
    delay = add_duration_sql(dialect, "r.decided_on", policy.policy.publication_delay)
    until = " ".join(
        f"WHEN '{c.id}' THEN {add_duration_sql(dialect, 'r.decided_on', c.publish_for)}"
        for c in published
        if c.publish_for is not None
    )
    ids = ", ".join(f"'{c.id}'" for c in published)
    return (
        f"r.category IN ({ids}) AND {delay} <= :t AND (CASE r.category {until} END) > :t "
        f"AND {RescoreSql(policy).effective()} "
        "AND NOT EXISTS (SELECT 1 FROM cases o WHERE o.record_id = r.id "
        "AND o.kind = 'objection' AND o.filed_on <= :t "
        "AND (o.decided_on IS NULL OR o.decided_on > :t))"
    )


_COLUMNS = (
    "SELECT s.name, r.authority_id, r.category, r.decided_on, r.legal_basis, r.reference "
    "FROM records r JOIN subjects s ON s.id = r.subject_id WHERE "
)
# A search's entries say which way they were found: 1 by name, 0 by reference.
_FOUND = _COLUMNS.replace(" FROM ", ", {by_name} AS by_name FROM ", 1)


def _entry(policy: Policy, row: Any) -> dict[str, Any]:
    authority = policy.authority_by_id.get(row.authority_id)
    category = policy.category_by_id.get(row.category)
    decided = row.decided_on
    return {
        "name": row.name,
        "authority": {"id": row.authority_id, "name": authority.name if authority else None},
        "category": {"id": row.category, "name": category.name if category else None},
        "decided_on": decided.isoformat() if isinstance(decided, date) else str(decided),
        "legal_basis": row.legal_basis,
        "reference": row.reference,
    }


def _page(limit: int, offset: int) -> None:
    problems = []
    if not 1 <= limit <= MAX_PAGE:
        problems.append(Problem("limit", f"between 1 and {MAX_PAGE}"))
    if offset < 0:
        problems.append(Problem("offset", "must not be negative"))
    if problems:
        raise ValidationError("bad page", problems)


def public_list(
    register: Register,
    list_id: str,
    *,
    limit: int = 50,
    offset: int = 0,
    sort: str = "name",
    direction: str = "asc",
) -> dict[str, Any]:
    """The published records behind a list's `any_of` conditions, of its current members."""
    _page(limit, offset)
    order = _order(sort, direction)
    today = register.clock.today()
    with register.read() as conn:
        _, policy = register.active_policy(conn)
        rule = policy.list_by_id.get(list_id)
        if rule is None:
            raise NotFoundError(
                f"list {list_id!r} is not declared", [Problem("list_id", f"unknown {list_id!r}")]
            )
        categories = sorted(
            {c for cond in rule.when if isinstance(cond, AnyOf) for c in cond.any_of}
        )
        entries: list[dict[str, Any]] = []
        if categories:
            quoted = ", ".join("'" + c.replace("'", "''") + "'" for c in categories)
            sql = (
                _COLUMNS
                + published_condition(policy, conn.dialect.name)
                + f" AND r.category IN ({quoted}) AND EXISTS (SELECT 1 FROM list_periods lp "
                "WHERE lp.subject_id = r.subject_id AND lp.list_id = :list "
                f"AND lp.left_on IS NULL) {order} LIMIT :limit OFFSET :offset"
            )
            params = {
                "t": dateparam(conn, today),
                "list": list_id,
                "limit": limit,
                "offset": offset,
            }
            entries = [_entry(policy, row) for row in conn.execute(text(sql), params)]
    return {
        "list": {"id": rule.id, "name": rule.name, "kind": rule.kind.value},
        "as_of": today.isoformat(),
        "entries": entries,
        "limit": limit,
        "offset": offset,
    }


def search(
    register: Register,
    q: str,
    *,
    limit: int = 50,
    offset: int = 0,
    sort: str = "name",
    direction: str = "asc",
) -> dict[str, Any]:
    """Published records whose subject's name contains `q`, or whose reference is `q`."""
    _page(limit, offset)
    order = _order(sort, direction, outer=True)
    query = q.strip()
    if not 2 <= len(query) <= 100:
        raise ValidationError(
            "the search text must be 2 to 100 characters",
            [Problem("q", "2 to 100 characters")],
        )
    pattern = (
        "%" + query.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    )
    today = register.clock.today()
    with register.read() as conn:
        _, policy = register.active_policy(conn)
        published = published_condition(policy, conn.dialect.name)
        # Every authority that ever filed, one index probe each: with them, the reference is
        # found through the unique (authority, reference) index.
        filers = list(conn.execute(text(_FILERS)).scalars())
        by_authority = ", ".join(f":a{n}" for n in range(len(filers))) or "NULL"
        # Two indexed ways in, never a scan of every record: the records of the subjects
        # whose name matches (by subject id), and the records with that reference.
        matches = "lower(name) LIKE :pattern ESCAPE '\\'"
        params = {
            **{f"a{n}": filer for n, filer in enumerate(filers)},
            "t": dateparam(conn, today),
            "pattern": pattern,
            "q": query,
            "limit": limit,
            "offset": offset,
        }
        page = _Page(conn, published, matches, by_authority, order, params)
        if sort == "name":
            rows = page.by_name(direction, offset + limit)
        else:
            rows = page.rows(f"SELECT id FROM subjects WHERE {matches}")  # every match
        entries = [_entry(policy, row) for row in rows]
    return {
        "q": query,
        "as_of": today.isoformat(),
        "entries": entries,
        "limit": limit,
        "offset": offset,
    }


FIRST_WALK = 40  # subjects per wanted entry in the first walk by name (then 8 times more)


class _Page:
    """One page of a search: the records of the subjects `named` (a subquery of ids) and the
    records whose reference is the search text, published on day :t, sorted and paged.

    Each entry says which way it was found; `named_total` counts the entries found by name,
    so that a search by name knows whether the span of names it read could fill the page.
    """

    def __init__(
        self,
        conn: Any,
        published: str,
        matches: str,
        by_authority: str,
        order: str,
        params: dict[str, Any],
    ) -> None:
        self.conn, self.matches, self.params = conn, matches, params
        self.sql = (
            f"WITH m AS{_fence(conn)} ({{named}}) "
            "SELECT u.*, SUM(u.by_name) OVER () AS named_total FROM ("
            f"{_FOUND.format(by_name=1)}{published} AND r.subject_id IN (SELECT id FROM m) "
            f"UNION {_FOUND.format(by_name=0)}{published} "
            f"AND r.authority_id IN ({by_authority}) AND r.reference = :q "
            "AND r.subject_id NOT IN (SELECT id FROM m)) u "
            f"{order} LIMIT :limit OFFSET :offset"
        )

    def rows(self, named: str, **extra: Any) -> list[Any]:
        """The page, with the subjects of `named` as the ones found by name."""
        statement = text(self.sql.format(named=named))
        return list(self.conn.execute(statement, {**self.params, **extra}))

    def by_name(self, direction: str, wanted: int) -> list[Any]:
        """The page of a search sorted by name, reading only the names it can reach.

        Entries sort by name first, so a page needs only the matching subjects from the
        first name in the sort's order to the name of its last entry. Walk the matching
        subjects in name order (`ix_subjects_name_id`) a batch at a time: one statement gives
        the span of names the walk covered, and the page is read for the subjects inside
        that span of the index, every holder of its last name included. When the names
        found there fill fewer than `wanted` entries and the walk did not see every match,
        walk eight times further. A common surname then costs the few thousand subjects
        that fill a page, not all its holders' records, and no statement reads every name
        but the walk.
        """
        way = "ASC" if direction == "asc" else "DESC"
        walk = max(1, FIRST_WALK * wanted)
        named = f"SELECT id FROM subjects WHERE {self.matches} AND name >= :low AND name <= :high"
        while True:
            low, high, seen = self.conn.execute(
                text(
                    f"SELECT MIN(name), MAX(name), COUNT(*) FROM (SELECT name FROM subjects "
                    f"WHERE {self.matches} ORDER BY name {way} LIMIT :walk) w"
                ),
                {"pattern": self.params["pattern"], "walk": walk},
            ).one()
            if not seen:  # no name matches: only the reference can
                return self.rows("SELECT id FROM subjects WHERE 1 = 0")
            rows = self.rows(named, low=low, high=high)
            # An empty page says nothing of how many entries the span holds: walk on.
            if seen < walk or (rows and rows[0].named_total >= wanted):
                return rows
            walk *= 8


def _fence(conn: Any) -> str:
    """PostgreSQL: the matching subjects are found first, then their records by index.

    Left to itself the planner misjudges how many names match a LIKE and reads every
    currently effective record, probing each one's subject (3 s at 10M records).
    """
    return " MATERIALIZED" if conn.dialect.name == "postgresql" else ""
