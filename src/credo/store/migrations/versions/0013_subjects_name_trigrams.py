"""index subjects' names by trigrams (PostgreSQL with pg_trgm): the public search finds a
name that few people bear, or nobody, without walking every name before it

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 17:30:00
"""

from __future__ import annotations

import logging

from alembic import op
from sqlalchemy import exc, text

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")
INDEX = "ix_subjects_name_trgm"


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return  # SQLite: the search walks the names (docs/performance.md)
    schema = bind.execute(
        text("SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pg_trgm'")
    ).scalar()
    if schema is None:
        # pg_trgm is a trusted extension (PostgreSQL 13 and later): the database's owner may
        # install it. Where it is missing or not allowed, the search works without the index.
        try:
            with bind.begin_nested():
                bind.execute(text("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public"))
        except exc.DBAPIError as error:
            log.warning("pg_trgm not installed (%s): public search without trigrams", error.orig)
            return
        schema = "public"
    op.execute(f"CREATE INDEX {INDEX} ON subjects USING gin (lower(name) {schema}.gin_trgm_ops)")


def downgrade() -> None:
    op.execute(f"DROP INDEX IF EXISTS {INDEX}")
