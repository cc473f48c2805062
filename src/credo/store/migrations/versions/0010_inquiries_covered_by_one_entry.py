"""inquiries covered by one audit entry per commit, and without a foreign key to subjects

Each commit of inquiries appends one `inquiries.logged` entry whose digest covers its rows;
`audit_seq` names that entry, so `credo audit verify` catches an inquiry deleted or changed
behind the application's back. Rows logged before this revision keep `audit_seq` NULL: each
has its own `inquiry.made` entry, and verify checks that their numbers still agree.

The foreign key's per-row check was a trigger on every standing lookup; only the
application writes inquiries, about subjects it has just read, and subjects are never
deleted (verify checks that every inquiry names a registered subject, as for records).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 00:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

FK = "fk_inquiries_subject_id_subjects"


def upgrade() -> None:
    with op.batch_alter_table("inquiries") as batch:
        batch.drop_constraint(FK, type_="foreignkey")
        batch.add_column(sa.Column("audit_seq", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inquiries") as batch:
        batch.drop_column("audit_seq")
        batch.create_foreign_key(FK, "subjects", ["subject_id"], ["id"])
