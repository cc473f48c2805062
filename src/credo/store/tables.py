"""The register's tables. Every table about a person carries `subject_id` (the shard key)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

# Ids of the tables that grow with the register are 64-bit on PostgreSQL (a national register
# passes 2**31 records, notices and inquiries); on SQLite every INTEGER PRIMARY KEY already is.
BigId = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

policy_versions = Table(
    "policy_versions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("policy_id", String(64), nullable=False),
    Column("version", String(64), nullable=False),
    Column("text", Text, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("activated_at", DateTime(timezone=True), nullable=False),
    Column("activated_by", String(128), nullable=False),
    Column("comment", Text, nullable=False, server_default=""),
    Column("active", Boolean, nullable=False, server_default=text("false")),
    UniqueConstraint("policy_id", "version"),
    Index(
        "ix_policy_versions_one_active",
        "active",
        unique=True,
        sqlite_where=text("active"),
        postgresql_where=text("active"),
    ),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("authority_id", String(64), nullable=False, index=True),
    Column("prefix", String(16), nullable=False, unique=True),
    Column("key_hash", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
)

batches = Table(
    "batches",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(16), nullable=False),  # records | subjects
    Column("authority_id", String(64)),
    Column("source", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

subjects = Table(
    "subjects",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("kind", String(16), nullable=False, server_default="person"),
    Column("organisation", String(200)),
    Column("position", String(200)),
    Column("email", String(254)),
    Column("batch_id", Integer, ForeignKey("batches.id"), nullable=False),
    Column("row_hash", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_subjects_name_id", "name", "id"),  # the public search by name (0011)
    # and on PostgreSQL with pg_trgm, ix_subjects_name_trgm: GIN over lower(name) (0013)
)

# The two hot tables, records and notices, carry no foreign keys: row-by-row key checks
# would dominate bulk filing, subjects and batches are never deleted, filing checks the
# subject inside its own transaction, and `credo audit verify` checks every reference.
# Filed facts are never changed. `ends_on` is derived: decided_on + the category's valid_for
# under the active policy (recomputed on activation), or the repair date when earlier.
records = Table(
    "records",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("authority_id", String(64), nullable=False),
    Column("reference", String(128), nullable=False),
    Column("version", Integer, nullable=False, server_default="1"),
    Column("subject_id", String(64), nullable=False),
    Column("category", String(64), nullable=False),
    Column("decided_on", Date, nullable=False),
    Column("occurred_on", Date),
    Column("legal_basis", String(500), nullable=False),
    Column("summary", String(2000), nullable=False),
    Column("amount", Numeric(18, 2)),
    Column("evidence_uri", String(2000)),
    Column("batch_id", Integer, nullable=False),
    Column("row_hash", String(64), nullable=False),
    Column("filed_at", DateTime(timezone=True), nullable=False),
    Column("ends_on", Date, nullable=False),
    Column("revoked", Boolean, nullable=False, server_default=text("false")),
    Column("counts_from", Date),
    Column("counts_until", Date),
    Column("repaired_on", Date),
    UniqueConstraint("authority_id", "reference", "version"),
    Index("ix_records_subject_id", "subject_id"),
    Index(
        "ix_records_counts_until",
        "counts_until",
        sqlite_where=text("counts_until IS NOT NULL"),
        postgresql_where=text("counts_until IS NOT NULL"),
    ),
)

# Derived from subjects by the rescore, so no foreign key: its per-row check was most of the
# cost of replacing every standing (migration 0007).
standings = Table(
    "standings",
    metadata,
    Column("subject_id", String(64), primary_key=True),
    Column("as_of", Date, nullable=False),
    Column("policy_version_id", Integer, nullable=False),
    Column("score", Integer, nullable=False),
    Column("grade", String(64), nullable=False),
    Column("lists", Text, nullable=False, server_default=""),
    Column("measures", Text, nullable=False, server_default=""),
    # The first day after `as_of` on which a record this standing counts stops counting
    # (NULL: none does), where the sweep finds the standings that records ending changed:
    # an index on every record's end would take each filed record at a random place (0014).
    Column("next_end", Date),
    Index("ix_standings_next_end", "next_end"),
)

# One row: the highest record id whose subject's standing is stored (see rescore.py).
register_state = Table(
    "register_state",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("scored_through", BigId, nullable=False, server_default="0"),
    Column("scored_as_of", Date),
)

inquiries = Table(
    "inquiries",
    metadata,
    Column("id", BigId, primary_key=True),
    # no foreign key: a trigger on every standing lookup (audit verify checks instead)
    Column("subject_id", String(64), nullable=False),
    Column("authority_id", String(64), nullable=False),
    Column("purpose", String(64), nullable=False),
    Column("as_of", Date, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("channel", String(16), nullable=False),
    # the `inquiries.logged` audit entry whose digest covers this row (NULL: logged before
    # migration 0010, under an `inquiry.made` entry of its own)
    Column("audit_seq", BigInteger),
    Index("ix_inquiries_subject_id", "subject_id"),
)

audit_entries = Table(
    "audit_entries",
    metadata,
    Column("seq", BigId, primary_key=True, autoincrement=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("action", String(64), nullable=False),
    Column("subject_id", String(64)),
    Column("payload", Text, nullable=False),
    Column("digest", String(64)),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

# ----------------------------------------------------------------------------- due process

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("password_hash", String(200), nullable=False),
    Column("role", String(16), nullable=False),  # subject | reviewer | admin | authority
    Column("subject_id", String(64), ForeignKey("subjects.id")),
    Column("authority_id", String(64)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("disabled", Boolean, nullable=False, server_default=text("false")),
)

sessions = Table(
    "sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False, index=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

login_attempts = Table(
    "login_attempts",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("username", String(64), nullable=False),
    Column("client", String(64), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("ok", Boolean, nullable=False),
    Index("ix_login_attempts_username_at", "username", "at"),
)

RECORD_FILED = "record.filed"  # the notice kind written for every record filed

# Notices double as the delivery outbox: status pending -> delivered (or stored when the
# register has no mail sender). `kind` says what happened; before/after carry a change.
notices = Table(
    "notices",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("subject_id", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("record_id", BigId),
    Column("case_id", BigId),
    Column("before", Text),
    Column("after", Text),
    Column("message", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("status", String(16), nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True)),
    Column("delivered_at", DateTime(timezone=True)),
    Column("last_error", Text),
    # A subject's notices are found by subject, but the `record.filed` notices by their
    # record (and the records by subject): one is written for every record filed, and an
    # index in record id order only ever grows at its end, where a bulk load writes it once
    # per page; by subject, each one lands on a page of its own (migration 0012).
    Index(
        "ix_notices_subject_id",
        "subject_id",
        sqlite_where=text(f"kind <> '{RECORD_FILED}'"),
        postgresql_where=text(f"kind <> '{RECORD_FILED}'"),
    ),
    Index(
        "ix_notices_record_filed",
        "record_id",
        sqlite_where=text(f"kind = '{RECORD_FILED}'"),
        postgresql_where=text(f"kind = '{RECORD_FILED}'"),
    ),
    # The outbox reads pending notices in id order; new ids append at the index's end.
    Index(
        "ix_notices_pending",
        "id",
        sqlite_where=text("status = 'pending'"),
        postgresql_where=text("status = 'pending'"),
    ),
)

attachments = Table(
    "attachments",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("subject_id", String(64), ForeignKey("subjects.id"), nullable=False),
    Column("filename", String(200), nullable=False),
    Column("content_type", String(100), nullable=False),
    Column("size", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("content", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# One table for the three kinds of case a subject opens: an objection to a record, a repair
# request, and a request for human review of an automated outcome. Each has a due date.
cases = Table(
    "cases",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("kind", String(16), nullable=False),  # objection | repair | review
    Column("subject_id", String(64), ForeignKey("subjects.id"), nullable=False),
    Column("record_id", BigId, ForeignKey("records.id")),
    Column("category", String(64)),  # the record's category (objections suspend by it)
    Column("target", String(128)),  # review: grade | list:<id> | measure:<id>
    Column("grounds", Text, nullable=False),
    Column("attachment_id", BigId, ForeignKey("attachments.id")),
    Column("filed_on", Date, nullable=False),
    Column("due_on", Date, nullable=False),
    Column("filed_at", DateTime(timezone=True), nullable=False),
    Column("status", String(16), nullable=False, server_default="open"),
    Column("decided_on", Date),
    Column("decided_at", DateTime(timezone=True)),
    Column("decided_by", String(128)),
    Column("outcome", String(16)),  # reject|correct|revoke / approve|refuse / confirm|correct
    Column("reasons", Text),
    Column("repair_on", Date),
    Column("new_record_id", BigId),
    Index("ix_cases_subject_id", "subject_id"),
    Index("ix_cases_status_due", "status", "due_on"),
    Index("ix_cases_record_id", "record_id"),
    Index("ix_cases_due_on", "due_on"),
)

# ----------------------------------------------------------------------------- lists, measures

# A subject's time on a list: entered on the day a rescore first found them on it, left on
# the day one first found them off it (NULL while on it). `grade` is the grade on entry and
# `records` the ids of the effective records of the list's `any_of` categories on entry:
# together, what caused the membership.
list_periods = Table(
    "list_periods",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("subject_id", String(64), nullable=False),
    Column("list_id", String(64), nullable=False),
    Column("entered_on", Date, nullable=False),
    Column("left_on", Date),
    Column("grade", String(64), nullable=False),
    Column("records", Text, nullable=False, server_default=""),
    Column("policy_version_id", Integer, nullable=False),
    Index("ix_list_periods_subject_id", "subject_id"),
    Index("ix_list_periods_list_id_entered_on", "list_id", "entered_on"),
)

# The measures an authority applies, as periods (the current ones have no end) ...
measure_periods = Table(
    "measure_periods",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("subject_id", String(64), nullable=False),
    Column("measure_id", String(64), nullable=False),
    Column("authority_id", String(64), nullable=False),
    Column("started_on", Date, nullable=False),
    Column("ended_on", Date),
    Index("ix_measure_periods_subject_id", "subject_id"),
    Index("ix_measure_periods_authority_subject", "authority_id", "subject_id", "measure_id"),
)

# ... and as a feed of starts and ends. `seq` is the cursor: writers take the audit lock
# before their first event and hold it to commit, so events become visible in seq order
# and a reader that resumes after the last seq it saw never skips or repeats one.
measure_events = Table(
    "measure_events",
    metadata,
    Column("seq", BigId, primary_key=True),
    Column("authority_id", String(64), nullable=False),
    Column("measure_id", String(64), nullable=False),
    Column("subject_id", String(64), nullable=False),
    Column("change", String(8), nullable=False),  # start | end
    Column("on_day", Date, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("policy_version_id", Integer, nullable=False),
    Index("ix_measure_events_authority_id_seq", "authority_id", "seq"),
)

# A department user's last-seen position in the measures feed (migration 0004): a web
# preference, not a register fact, so it is not audited and carries no subject.
measure_feed_seen = Table(
    "measure_feed_seen",
    metadata,
    Column("user_id", Integer, primary_key=True),
    Column("authority_id", String(64), primary_key=True),
    Column("cursor", Integer, nullable=False),
    Column("seen_at", DateTime(timezone=True), nullable=False),
)
