"""index subjects by name and id: the public search by name reads the ids of the subjects
in a span of names from the index alone, not from each subject's row

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 13:40:00
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_subjects_name_id", "subjects", ["name", "id"])
    op.drop_index("ix_subjects_name", table_name="subjects")


def downgrade() -> None:
    op.create_index("ix_subjects_name", "subjects", ["name"])
    op.drop_index("ix_subjects_name_id", table_name="subjects")
