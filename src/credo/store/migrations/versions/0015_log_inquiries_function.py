"""PostgreSQL logs a commit of inquiries by one call of `credo_log_inquiries`: the chain's
lock, the audit entry chained after the head the lock leaves, and the rows that name it, in
one statement whose plans PL/pgSQL keeps, instead of a text of four statements parsed and
planned afresh for every group commit

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05 22:10:00
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

# The entry's link is SHA-256 over `prev_hash|seq|tail`, as `credo.store.audit.entry_hash`
# computes it; `tail` (the entry's own fields, joined) comes from Python. The lock is
# `credo.store.audit.CHAIN_LOCK`, which every writer of the chain takes. Under READ
# COMMITTED each statement of the function reads what was committed when it starts, so the
# head is read after the lock is held. The rows come as one JSON array of
# [subject_id, authority_id, purpose, as_of, at, channel] arrays.
FUNCTION = """
CREATE OR REPLACE FUNCTION credo_log_inquiries(
    p_at timestamptz, p_actor text, p_action text, p_subject_id text, p_payload text,
    p_digest text, p_tail text, p_rows json
) RETURNS bigint LANGUAGE plpgsql AS $body$
DECLARE
    entry_seq bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(7276001);
    INSERT INTO audit_entries (seq, at, actor, action, subject_id, payload, digest, prev_hash, hash)
    SELECT h.seq + 1, p_at, p_actor, p_action, p_subject_id, p_payload, p_digest, h.hash,
           encode(sha256(convert_to(h.hash || '|' || (h.seq + 1)::text || '|' || p_tail, 'UTF8')),
                  'hex')
    FROM (
        SELECT * FROM (SELECT seq, hash FROM audit_entries ORDER BY seq DESC LIMIT 1) AS top
        UNION ALL
        SELECT 0, '0000000000000000000000000000000000000000000000000000000000000000'
        ORDER BY seq DESC LIMIT 1
    ) AS h
    RETURNING seq INTO entry_seq;
    INSERT INTO inquiries (subject_id, authority_id, purpose, as_of, at, channel, audit_seq)
    SELECT r ->> 0, r ->> 1, r ->> 2, (r ->> 3)::date, (r ->> 4)::timestamptz, r ->> 5, entry_seq
    FROM json_array_elements(p_rows) AS r;
    RETURN entry_seq;
END
$body$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "DROP FUNCTION IF EXISTS credo_log_inquiries(timestamptz, text, text, text, text, "
            "text, text, json)"
        )
