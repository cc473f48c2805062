"""PostgreSQL hash-partitioned by subject (`credo partition`, docs/scale.md), on one server.

The register is partitioned loaded and empty; on both, filing, idempotent re-imports,
lookups, rescoring, cases and `credo audit verify` must behave exactly as unpartitioned.
The set-based rescore's property test on a partitioned register is in
test_rescore_agrees_with_scorer.py.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from credo import synthetic
from credo.domain.errors import ConflictError, ValidationError
from credo.domain.policy_load import load_policy
from credo.services.audit_verify import verify_audit
from credo.services.cases import decide_case, object_to_record
from credo.services.filing import subject_standing
from credo.services.partitioning import partition
from credo.services.register import Register
from credo.services.standing import query_standing
from credo.services.subjects import import_subjects
from credo.store.partitions import TABLES, partitioning
from credo.store.rescore import rescore_all
from tests.conftest import PARTITIONS, TODAY
from tests.factories import example_policy, file_rows, record, rows, seed_register

SHAPE = synthetic.Shape(subjects=200, records=2_000, today=TODAY, seed=11)


def _load(register: Register) -> dict[str, list[dict[str, str]]]:
    """The synthetic register filed through the import, by authority."""
    seed_register(register, subjects=0, policy=example_policy())
    import_subjects(register, rows(synthetic.subjects(SHAPE)), actor="test", source="t")
    by_authority: dict[str, list[dict[str, str]]] = {}
    for authority, row in synthetic.records(load_policy(example_policy()), SHAPE):
        by_authority.setdefault(authority, []).append(row)
    for authority, items in by_authority.items():
        assert file_rows(register, authority, items).rejected == 0
    return by_authority


def _state(register: Register) -> dict[str, Any]:
    with register.read() as conn:
        return {
            "standings": conn.execute(text("SELECT * FROM standings ORDER BY subject_id")).all(),
            "records": conn.execute(text("SELECT * FROM records ORDER BY id")).all(),
            **{
                table: conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one()
                for table, _ in TABLES
            },
        }


def _verified(register: Register) -> None:
    result = verify_audit(register)
    assert result.ok, result.problems


@pytest.mark.skipif(PARTITIONS > 0, reason="the schema is partitioned before the test")
def test_partitioning_a_loaded_register_keeps_every_row_and_standing(
    register: Register, database_url: str
) -> None:
    if database_url.startswith("sqlite"):
        with pytest.raises(ValidationError, match="partitions: the embedded SQLite"):
            partition(register, 4, actor="test")
        return
    _load(register)
    before = _state(register)
    moved = partition(register, 4, actor="admin")
    assert {item.table: item.rows for item in moved} == {
        table: before[table] for table, _ in TABLES
    }
    with register.read() as conn:
        assert partitioning(conn) == {table: 4 for table, _ in TABLES}
        entry = conn.execute(
            text("SELECT actor, payload FROM audit_entries ORDER BY seq DESC LIMIT 1")
        ).one()
    assert entry.actor == "admin" and '"partitions":4' in entry.payload
    assert _state(register) == before
    _verified(register)
    with register.write() as conn:
        version_id, policy = register.active_policy(conn)
        rescore_all(conn, policy, version_id, TODAY, register.clock.now())
    assert _state(register)["standings"] == before["standings"]

    with pytest.raises(ConflictError, match="already hash-partitioned"):
        partition(register, 8, actor="admin")
    assert _state(register) == before


@pytest.mark.postgres
def test_a_partitioned_register_files_once_and_answers(
    partitioned_register: Register,
) -> None:
    register = partitioned_register
    by_authority = _load(register)
    authority, items = sorted(by_authority.items())[0]
    stored = _state(register)

    again = file_rows(register, authority, items)
    assert (again.stored, again.duplicates) == (0, len(items))
    assert _state(register) == stored

    # The database itself refuses a second filing of a reference (record_refs), even for
    # another subject's partition and behind the application's back.
    with register.write() as conn, pytest.raises(IntegrityError, match="pk_record_refs"):
        conn.execute(
            text(
                "INSERT INTO records (authority_id, reference, version, subject_id, category, "
                "decided_on, legal_basis, summary, batch_id, row_hash, filed_at, ends_on) "
                "SELECT authority_id, reference, version, 's-0000002', category, decided_on, "
                "legal_basis, summary, batch_id, row_hash, filed_at, ends_on FROM records "
                "WHERE subject_id <> 's-0000002' LIMIT 1"
            )
        )

    answer = query_standing(
        register,
        subject_id="s-0000001",
        purpose_id="promotion-review",
        authority_id="city-personnel",
    )
    with register.read() as conn:
        pure = subject_standing(conn, register.active_policy(conn)[1], "s-0000001", TODAY)
        assert answer["grade"] == pure.grade
        inquiries = conn.execute(text("SELECT subject_id, authority_id FROM inquiries")).all()
        assert inquiries == [("s-0000001", "city-personnel")]
        # One subject's lookup reads one partition of each table.
        plan = "\n".join(
            str(row[0])
            for row in conn.execute(
                text("EXPLAIN SELECT * FROM records WHERE subject_id = 's-0000001'")
            )
        )
        assert len(set(re.findall(r" on (records_p\d+)", plan))) == 1, plan
    _verified(register)


@pytest.mark.postgres
def test_cases_on_a_partitioned_register(partitioned_register: Register) -> None:
    register = partitioned_register
    seed_register(register)
    file_rows(
        register,
        "city-court",
        [record("R1", "s-001", "court.order_defiance", TODAY - timedelta(days=30))],
    )
    with register.read() as conn:
        record_id = conn.execute(text("SELECT id FROM records")).scalar_one()
    case = object_to_record(register, "s-001", record_id, "It was not me.")
    decided = decide_case(register, case, reviewer="rev", outcome="revoke", reasons="Not him.")
    assert decided["status"] == "revoked"
    with register.read() as conn:
        assert conn.execute(text("SELECT revoked FROM records")).scalar_one() is True
        assert (
            conn.execute(
                text("SELECT score FROM standings WHERE subject_id = 's-001'")
            ).scalar_one()
            == 1000
        )
    _verified(register)


def _standings_indexes(register: Register) -> list[Any]:
    """Every index of standings and of its partitions, as PostgreSQL defines it, and the
    index behind each key."""
    with register.read() as conn:
        return conn.execute(
            text(
                "SELECT i.tablename, i.indexname, i.indexdef, c.conname, "
                "CAST(CAST(quote_ident(i.indexname) AS regclass) AS oid) AS oid FROM pg_indexes i "
                "LEFT JOIN pg_constraint c ON c.conindid = "
                "CAST(quote_ident(i.indexname) AS regclass) "
                "WHERE i.schemaname = current_schema() AND i.tablename LIKE 'standings%' "
                "ORDER BY i.tablename, i.indexname"
            )
        ).all()


def _full_rescore_keeps_the_standings_indexes(register: Register) -> None:
    _load(register)
    before = _standings_indexes(register)
    assert {row.indexname for row in before} >= {"pk_standings", "ix_standings_next_end"}
    stored = _state(register)["standings"]
    with register.write() as conn:
        version_id, policy = register.active_policy(conn)
        rescore_all(conn, policy, version_id, TODAY, register.clock.now())
    after = _standings_indexes(register)
    assert [row[:4] for row in after] == [row[:4] for row in before]  # each as it was
    assert not {row.oid for row in after} & {row.oid for row in before}  # built again
    assert _state(register)["standings"] == stored
    with register.write() as conn, pytest.raises(IntegrityError, match=r"pk_standings|_pkey"):
        conn.execute(text("INSERT INTO standings SELECT * FROM standings LIMIT 1"))
    with register.read() as conn:
        conn.execute(text("SET LOCAL enable_seqscan = off"))  # a few rows: would be read whole
        plan = "\n".join(
            str(row[0])
            for row in conn.execute(
                text("EXPLAIN SELECT subject_id FROM standings WHERE next_end = DATE '2027-01-01'")
            )
        )
    assert "ix_standings_next_end" in plan or "next_end_idx" in plan, plan


@pytest.mark.postgres
def test_a_full_rescore_builds_the_standings_indexes_again_as_they_were(
    pg_register: Register,
) -> None:
    _full_rescore_keeps_the_standings_indexes(pg_register)


@pytest.mark.postgres
def test_a_full_rescore_of_a_partitioned_register_builds_every_partition_index_again(
    partitioned_register: Register,
) -> None:
    _full_rescore_keeps_the_standings_indexes(partitioned_register)


@pytest.mark.postgres
def test_a_role_that_may_not_alter_standings_rescores_with_the_indexes_in_place(
    pg_register: Register,
) -> None:
    """Keys and indexes are dropped only by a role that owns the table: a role with the
    rights to fill it rescores with them in place."""
    register = pg_register
    _load(register)
    before = _standings_indexes(register)
    role = f"credo_filler_{uuid.uuid4().hex[:8]}"
    with register.write() as conn:
        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
        conn.execute(text(f"CREATE ROLE {role} NOLOGIN"))
        conn.execute(text(f"GRANT USAGE ON SCHEMA {schema} TO {role}"))
        conn.execute(text(f"GRANT ALL ON ALL TABLES IN SCHEMA {schema} TO {role}"))
        conn.execute(text(f"GRANT ALL ON ALL SEQUENCES IN SCHEMA {schema} TO {role}"))
    try:
        with register.write() as conn:
            conn.execute(text(f"SET LOCAL ROLE {role}"))
            version_id, policy = register.active_policy(conn)
            assert rescore_all(conn, policy, version_id, TODAY, register.clock.now()) > 0
        assert _standings_indexes(register) == before  # the same indexes, never dropped
    finally:
        with register.write() as conn:
            conn.execute(text(f"DROP OWNED BY {role}"))
            conn.execute(text(f"DROP ROLE {role}"))
