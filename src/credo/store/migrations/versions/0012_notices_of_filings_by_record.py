"""index the `record.filed` notices by record rather than by subject: one is written for
every record filed, and a bulk load wrote each into a random page of the subject index

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 17:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

OTHERS = sa.text("kind <> 'record.filed'")
FILINGS = sa.text("kind = 'record.filed'")


def upgrade() -> None:
    op.drop_index("ix_notices_subject_id", table_name="notices")
    op.create_index(
        "ix_notices_subject_id",
        "notices",
        ["subject_id"],
        sqlite_where=OTHERS,
        postgresql_where=OTHERS,
    )
    op.create_index(
        "ix_notices_record_filed",
        "notices",
        ["record_id"],
        sqlite_where=FILINGS,
        postgresql_where=FILINGS,
    )


def downgrade() -> None:
    op.drop_index("ix_notices_record_filed", table_name="notices")
    op.drop_index("ix_notices_subject_id", table_name="notices")
    op.create_index("ix_notices_subject_id", "notices", ["subject_id"])
