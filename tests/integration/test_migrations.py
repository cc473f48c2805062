"""The migrations build exactly the schema `credo.store.tables` describes (both databases)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from credo.services.register import Register
from credo.store.tables import metadata


def test_the_migrated_schema_matches_the_tables(register: Register) -> None:
    with register.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, metadata)
    assert differences == []
