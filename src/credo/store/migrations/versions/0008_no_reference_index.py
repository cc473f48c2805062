"""drop the records.reference index again: the public search finds a reference through the
unique (authority_id, reference, version) index, one probe per filing authority, and every
import no longer pays for a fifth index on the records table

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 20:25:00
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_records_reference", table_name="records")


def downgrade() -> None:
    op.create_index("ix_records_reference", "records", ["reference"])
