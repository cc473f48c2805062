"""an index on records.reference for the public search by reference

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 17:50:00
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_records_reference", "records", ["reference"])


def downgrade() -> None:
    op.drop_index("ix_records_reference", table_name="records")
