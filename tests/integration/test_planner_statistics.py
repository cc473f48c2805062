"""Planner statistics for set-based work (PostgreSQL): credo refreshes what it relies on.

A rescore joins its temporary tables and the list and measure periods against thousands
of subjects at once. Autovacuum never analyzes temporary tables, and may be off or behind
on the others: with no statistics the planner takes a table for nearly empty and loops
over it once per row (a rescore on a later day went from 8 s to minutes at 200k subjects).
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import Connection, create_engine, text

from credo.services.register import Register
from credo.store.repository import refresh_stale_statistics
from credo.store.rescore import rescore_all
from tests.conftest import TODAY
from tests.factories import example_policy, file_rows, record, seed_register

pytestmark = pytest.mark.postgres


# The table itself, or the partitions of a table partitioned by `credo partition`.
_PARTS = (
    "FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid "
    "WHERE c.relkind <> 'p' AND (s.relid = to_regclass(:t) OR s.relid IN "
    "(SELECT inhrelid FROM pg_inherits WHERE inhparent = to_regclass(:t)))"
)


def _flushed(conn: Connection, table: str, changed: int) -> None:
    """Wait until the server's statistics count `changed` modifications of `table` (each
    backend flushes its counters when idle, at most once a second)."""
    for _ in range(100):
        seen = conn.execute(
            text(f"SELECT sum(s.n_mod_since_analyze) {_PARTS}"), {"t": table}
        ).scalar()
        if seen is not None and seen >= changed:
            return
        conn.rollback()
        time.sleep(0.1)
    pytest.fail(f"the statistics never counted {changed} changes of {table}")


def _analyzed(conn: Connection, table: str) -> bool:
    """Whether `table` (every partition of it) has been analyzed, as this transaction sees
    it: an analyzed table's row estimate is no longer -1."""
    return bool(
        conn.execute(text(f"SELECT bool_and(c.reltuples >= 0) {_PARTS}"), {"t": table}).scalar_one()
    )


def _reltuples(conn: Connection, table: str) -> float:
    return float(
        conn.execute(
            text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:t)"), {"t": table}
        ).scalar_one()
    )


def test_only_tables_autovacuum_would_analyze_are_analyzed(pg_url: str) -> None:
    engine = create_engine(pg_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE grown (x integer)"))
            conn.execute(text("CREATE TABLE quiet (x integer)"))
            conn.execute(text("INSERT INTO grown SELECT generate_series(1, 500)"))
            conn.execute(text("INSERT INTO quiet SELECT generate_series(1, 10)"))
        with engine.connect() as conn:
            _flushed(conn, "grown", 500)
            _flushed(conn, "quiet", 10)
            assert _reltuples(conn, "grown") == -1  # never analyzed
            assert refresh_stale_statistics(conn, "grown", "quiet") == ["grown"]
            assert _reltuples(conn, "grown") == 500
            assert _reltuples(conn, "quiet") == -1  # 10 changes: under autovacuum's 50
            conn.commit()
            assert refresh_stale_statistics(conn, "grown", "quiet") == []
    finally:
        engine.dispose()


def test_a_rescore_analyzes_the_list_periods_it_joins(pg_register: Register) -> None:
    seed_register(pg_register, subjects=80, policy=example_policy())
    day = TODAY - timedelta(days=30)
    items = [record(f"R-{n}", f"s-{n:03d}", "court.order_defiance", day) for n in range(1, 81)]
    assert file_rows(pg_register, "city-court", items).stored == 80
    with pg_register.write() as conn:  # the import's rescore put all 80 on the black list
        assert (
            conn.execute(
                text("SELECT count(*) FROM list_periods WHERE left_on IS NULL")
            ).scalar_one()
            == 80
        )
    with pg_register.engine.connect() as conn:
        _flushed(conn, "list_periods", 80)
        assert not _analyzed(conn, "list_periods")
    later = TODAY + timedelta(days=3 * 365)  # the records have expired: all 80 leave
    with pg_register.write() as conn:
        version_id, policy = pg_register.active_policy(conn)
        rescore_all(conn, policy, version_id, later, pg_register.clock.now())
        assert _analyzed(conn, "list_periods")
        assert (
            conn.execute(
                text("SELECT count(*) FROM list_periods WHERE left_on = :t"), {"t": later}
            ).scalar_one()
            == 80
        )
