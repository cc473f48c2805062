"""index subjects by name: the public search, sorted by name, walks the matching subjects in
name order and stops once it has a page of published records, instead of reading the
published records of every subject whose name matches

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 22:05:00
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_subjects_name", "subjects", ["name"])


def downgrade() -> None:
    op.drop_index("ix_subjects_name", table_name="subjects")
