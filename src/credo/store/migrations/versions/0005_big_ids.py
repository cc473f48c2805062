"""64-bit ids for the tables that grow with the register (PostgreSQL; SQLite's are already)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 17:30:00
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# table -> (its serial key or None, the other id columns)
COLUMNS = {
    "records": ("id", []),
    "register_state": (None, ["scored_through"]),
    "inquiries": ("id", []),
    "audit_entries": (None, ["seq"]),
    "login_attempts": ("id", []),
    "notices": ("id", ["record_id", "case_id"]),
    "attachments": ("id", []),
    "cases": ("id", ["record_id", "attachment_id", "new_record_id"]),
    "list_periods": ("id", []),
    "measure_periods": ("id", []),
    "measure_events": ("seq", []),
}


def _retype(kind: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, (serial, others) in COLUMNS.items():
        for column in ([serial] if serial else []) + others:
            op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE {kind}")
        if serial:
            op.execute(
                f"ALTER SEQUENCE IF EXISTS {table}_{serial}_seq AS {kind}"
                + (" MAXVALUE 2147483647" if kind == "integer" else " NO MAXVALUE")
            )


def upgrade() -> None:
    _retype("bigint")


def downgrade() -> None:
    _retype("integer")
