"""The hot path's psycopg connections (credo.store.hotpath): generic plans and READ
COMMITTED for their session, and whatever the database URL or PGOPTIONS asks of it kept."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from credo.services.register import Register
from credo.store.db import make_engine
from credo.store.hotpath import driver_connection
from tests.conftest import PG_URL, require_postgres


def _session(engine: Engine, *names: str) -> list[str]:
    with driver_connection(engine) as hot:
        return [hot.execute(f"SHOW {name}").fetchone()[0] for name in names]


def test_a_hot_connection_plans_generically_in_the_registers_schema(
    pg_register: Register,
) -> None:
    with pg_register.engine.connect() as conn:
        schema = conn.exec_driver_sql("SELECT current_schema()").scalar_one()
    with driver_connection(pg_register.engine) as hot:
        current = hot.execute("SELECT current_schema()").fetchone()
    assert current is not None and current[0] == schema
    mode, isolation = _session(pg_register.engine, "plan_cache_mode", "transaction_isolation")
    assert (mode, isolation) == ("force_generic_plan", "read committed")


def test_pgoptions_reach_the_hot_connections_too(monkeypatch: pytest.MonkeyPatch) -> None:
    require_postgres()
    monkeypatch.setenv(
        "PGOPTIONS", "-c statement_timeout=12345 -c default_transaction_isolation=serializable"
    )
    engine = make_engine(PG_URL)
    try:
        timeout, mode, isolation = _session(
            engine, "statement_timeout", "plan_cache_mode", "transaction_isolation"
        )
    finally:
        engine.dispose()
    assert (timeout, mode, isolation) == ("12345ms", "force_generic_plan", "read committed")
