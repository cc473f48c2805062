"""The hot path's psycopg connections (credo.store.hotpath): generic plans for its prepared
statements, and whatever the database URL asks of the session kept beside them."""

from __future__ import annotations

from credo.services.register import Register
from credo.store.db import make_engine
from credo.store.hotpath import GENERIC_PLANS, _settings, driver_connection


def test_the_urls_own_options_are_kept_beside_generic_plans() -> None:
    engine = make_engine("postgresql+psycopg://u@db.example/credo?options=-csearch_path%3Dtenant")
    assert _settings(engine)["kwargs"]["options"] == f"-csearch_path=tenant {GENERIC_PLANS}"
    plain = make_engine("postgresql+psycopg://u@db.example/credo")
    assert _settings(plain)["kwargs"]["options"] == GENERIC_PLANS


def test_a_hot_connection_plans_generically_in_the_registers_schema(
    pg_register: Register,
) -> None:
    with pg_register.engine.connect() as conn:
        schema = conn.exec_driver_sql("SELECT current_schema()").scalar_one()
    with driver_connection(pg_register.engine) as hot:
        mode = hot.execute("SHOW plan_cache_mode").fetchone()
        current = hot.execute("SELECT current_schema()").fetchone()
    assert mode is not None and mode[0] == "force_generic_plan"
    assert current is not None and current[0] == schema
