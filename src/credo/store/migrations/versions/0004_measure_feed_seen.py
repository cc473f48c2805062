"""where each department user last marked the measure change feed as seen

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 16:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "measure_feed_seen",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("authority_id", sa.String(length=64), nullable=False),
        sa.Column("cursor", sa.Integer(), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "authority_id", name=op.f("pk_measure_feed_seen")),
    )


def downgrade() -> None:
    op.drop_table("measure_feed_seen")
