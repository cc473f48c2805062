"""list periods, measure periods and the measure change feed

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 16:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "list_periods",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subject_id", sa.String(length=64), nullable=False),
        sa.Column("list_id", sa.String(length=64), nullable=False),
        sa.Column("entered_on", sa.Date(), nullable=False),
        sa.Column("left_on", sa.Date(), nullable=True),
        sa.Column("grade", sa.String(length=64), nullable=False),
        sa.Column("records", sa.Text(), server_default="", nullable=False),
        sa.Column("policy_version_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_list_periods")),
    )
    op.create_index("ix_list_periods_subject_id", "list_periods", ["subject_id"])
    op.create_index("ix_list_periods_list_id_entered_on", "list_periods", ["list_id", "entered_on"])
    op.create_table(
        "measure_periods",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subject_id", sa.String(length=64), nullable=False),
        sa.Column("measure_id", sa.String(length=64), nullable=False),
        sa.Column("authority_id", sa.String(length=64), nullable=False),
        sa.Column("started_on", sa.Date(), nullable=False),
        sa.Column("ended_on", sa.Date(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_measure_periods")),
    )
    op.create_index("ix_measure_periods_subject_id", "measure_periods", ["subject_id"])
    op.create_index(
        "ix_measure_periods_authority_subject",
        "measure_periods",
        ["authority_id", "subject_id", "measure_id"],
    )
    op.create_table(
        "measure_events",
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("authority_id", sa.String(length=64), nullable=False),
        sa.Column("measure_id", sa.String(length=64), nullable=False),
        sa.Column("subject_id", sa.String(length=64), nullable=False),
        sa.Column("change", sa.String(length=8), nullable=False),
        sa.Column("on_day", sa.Date(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("policy_version_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_measure_events")),
    )
    op.create_index("ix_measure_events_authority_id_seq", "measure_events", ["authority_id", "seq"])
    _start_history(op.get_bind())


def _start_history(conn: sa.engine.Connection) -> None:
    """Registers scored before this revision start their history at the stored standings."""
    row = conn.execute(sa.text("SELECT id, text FROM policy_versions WHERE active")).first()
    if row is None:
        return
    from credo.domain.policy_load import load_policy

    policy = load_policy(row.text, "stored policy")
    authority = {m.id: m.authority for m in policy.measures}
    lists: list[dict[str, object]] = []
    measures: list[dict[str, object]] = []
    for s in conn.execute(
        sa.text("SELECT subject_id, as_of, grade, lists, measures FROM standings")
    ):
        for list_id in filter(None, s.lists.split(",")):
            lists.append({"s": s.subject_id, "l": list_id, "d": s.as_of, "g": s.grade, "v": row.id})
        for measure_id in filter(None, s.measures.split(",")):
            if measure_id in authority:
                measures.append(
                    {"s": s.subject_id, "m": measure_id, "a": authority[measure_id], "d": s.as_of}
                )
    if lists:
        conn.execute(
            sa.text(
                "INSERT INTO list_periods (subject_id, list_id, entered_on, grade, records, "
                "policy_version_id) VALUES (:s, :l, :d, :g, '', :v)"
            ),
            lists,
        )
    if measures:
        conn.execute(
            sa.text(
                "INSERT INTO measure_periods (subject_id, measure_id, authority_id, started_on) "
                "VALUES (:s, :m, :a, :d)"
            ),
            measures,
        )
        conn.execute(
            sa.text(
                "INSERT INTO measure_events (authority_id, measure_id, subject_id, change, "
                "on_day, at, policy_version_id) SELECT authority_id, measure_id, subject_id, "
                "'start', started_on, CURRENT_TIMESTAMP, :v FROM measure_periods ORDER BY id"
            ),
            {"v": row.id},
        )


def downgrade() -> None:
    op.drop_table("measure_events")
    op.drop_table("measure_periods")
    op.drop_table("list_periods")
