"""The migrations build exactly the schema `credo.store.tables` describes (both databases)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from credo.clock import FixedDateClock
from credo.services.audit_verify import verify_audit
from credo.services.register import Register
from credo.services.standing import query_standing
from credo.services.sweep import sweep
from credo.store import audit
from credo.store.db import alembic_config, dateparam
from credo.store.tables import metadata
from tests.factories import file_rows, record, seed_register

# PostgreSQL's trigram index on names (0013) exists only where pg_trgm could be installed,
# so the tables do not describe it; the test below checks it where it exists.
OPTIONAL = {"ix_subjects_name_trgm"}


def _described(_obj: object, name: str | None, type_: str, _reflected: bool, _to: object) -> bool:
    return not (type_ == "index" and name in OPTIONAL)


@pytest.mark.empty_schema
def test_the_migrated_schema_matches_the_tables(register: Register) -> None:
    with register.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_object": _described}
        )
        differences = compare_metadata(context, metadata)
    assert differences == []


def test_postgresql_finds_a_rare_name_through_the_trigram_index(pg_register: Register) -> None:
    seed_register(pg_register, subjects=3)
    with pg_register.engine.connect() as conn:
        installable = conn.execute(
            text("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")
        ).first()
        if installable is None:
            pytest.skip("this PostgreSQL server has no pg_trgm (the contrib modules)")
        conn.execute(text("SET enable_seqscan = off"))
        plan = conn.execute(
            text("EXPLAIN SELECT id FROM subjects WHERE lower(name) LIKE '%zzq%'")
        ).scalars()
        # by name, or by the partitions' own names for it on a partitioned register
        assert "Index Cond: (lower((name)::text) ~~ '%zzq%'::text)" in "\n".join(plan)


def test_inquiries_logged_before_0010_still_verify(register: Register) -> None:
    """Rows from before migration 0010 have an `inquiry.made` entry each and no digest:
    after the upgrade they verify, and losing one is still found."""
    seed_register(register, subjects=2)
    cfg = alembic_config()
    with register.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0009")
    at = datetime(2026, 3, 15, 9, tzinfo=UTC)
    with register.write() as conn:
        for subject_id in ("s-001", "s-002"):
            conn.execute(
                text(
                    "INSERT INTO inquiries (subject_id, authority_id, purpose, as_of, at, "
                    "channel) VALUES (:s, 'city-personnel', 'promotion-review', :d, :at, 'api')"
                ),
                {"s": subject_id, "d": dateparam(conn, date(2026, 3, 15)), "at": at},
            )
            audit.append(
                conn,
                actor="city-personnel",
                action="inquiry.made",
                payload={"purpose": "promotion-review", "as_of": "2026-03-15", "channel": "api"},
                at=at,
                subject_id=subject_id,
            )
    with register.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    query_standing(
        register, authority_id="city-personnel", subject_id="s-001", purpose_id="promotion-review"
    )

    result = verify_audit(register)
    assert result.ok, result.problems
    assert result.inquiries == 3

    with register.write() as conn:
        conn.execute(text("DELETE FROM inquiries WHERE audit_seq IS NULL AND subject_id = 's-002'"))
    problems = verify_audit(register).problems
    assert problems == [
        "2 inquiries were logged with an entry each (inquiry.made) before migration 0010, "
        "1 such rows are stored"
    ]


def test_standings_stored_before_0014_are_swept_when_a_record_they_count_ends(
    register: Register, clock: FixedDateClock
) -> None:
    """0014 moved the sweep's search for ended records from an index on records to the
    standings' `next_end`: standings stored before it are given one at the upgrade."""
    seed_register(register, subjects=2)
    volunteered = record("V-1", "s-001", "civic.volunteering", "2025-12-01")  # ends 2026-12-01
    assert file_rows(register, "city-civil", [volunteered]).stored == 1
    cfg = alembic_config()
    with register.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0013")
        command.upgrade(cfg, "head")
    with register.read() as conn:
        stored = conn.execute(text("SELECT subject_id, next_end FROM standings")).all()
    assert {sid: str(end) if end else None for sid, end in stored} == {
        "s-001": "2026-12-01",
        "s-002": None,
    }
    clock.day = date(2026, 11, 30)
    assert sweep(register).rescored == 0
    clock.day = date(2026, 12, 1)
    assert sweep(register).rescored == 1
    with register.read() as conn:
        row = conn.execute(text("SELECT score, next_end FROM standings WHERE subject_id = 's-001'"))
        assert tuple(row.one()) == (1000, None)
