"""standings without a foreign key to subjects

A full rescore replaces every standing at once; the key's per-row check was most of that
write (PostgreSQL checks it in a trigger per row). Standings are derived from subjects by the
rescore itself, which only ever scores registered subjects, and subjects are never deleted.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 19:45:00
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

FK = "fk_standings_subject_id_subjects"


def upgrade() -> None:
    with op.batch_alter_table("standings") as batch:
        batch.drop_constraint(FK, type_="foreignkey")


def downgrade() -> None:
    with op.batch_alter_table("standings") as batch:
        batch.create_foreign_key(FK, "subjects", ["subject_id"], ["id"])
