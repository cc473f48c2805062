"""`credo import` killed with SIGKILL at random points, then re-run (issue 6, faults).

Each batch of an import is one transaction holding its records, their notices and their
audit entry, and a reference the authority already filed is a retry: so however often the
process dies, re-running the same file ends with exactly the file's good rows stored once,
an intact audit chain and standings equal to a fresh rescore.
"""

from __future__ import annotations

import random
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text

from credo.services.policies import activate_policy
from credo.services.register import Register
from credo.services.subjects import import_subjects
from tests.factories import rows
from tests.faults.conftest import (
    AUTHORITY,
    Credo,
    RecordsFile,
    kill_group,
    open_register,
    policy_text,
    records_file,
    standings_match_a_fresh_rescore,
    stored_rows,
    subject_rows,
)

SUBJECTS = 2_000
ROWS = 24_000  # about 4.7 MB: big enough for `credo import` to validate in a worker process
CHUNK_BYTES = 512 * 1024  # about 2,600 rows per batch
COMMIT_ROWS = 1  # a transaction per batch: many commit points to land between
KILLS = 2  # kills after some rows are stored, besides one before the first commit


@dataclass
class Kill:
    """One run of the import that was killed, and what was stored when it died."""

    delay: float
    stored_before: int
    stored_after: int


def seeded(register: Register) -> None:
    """The example policy and SUBJECTS synthetic public servants."""
    activate_policy(register, policy_text(), actor="test", comment="faults")
    report = import_subjects(register, rows(subject_rows(SUBJECTS)), actor="test", source="t")
    assert report.stored == SUBJECTS


def assert_exactly_the_good_rows(register: Register, data: RecordsFile) -> None:
    """The store holds each good row of the file once, and nothing else of this authority."""
    stored = stored_rows(register)
    assert len(stored) == len(set(stored)), "a record was stored twice"
    assert len(stored) == len(data.good)
    assert set(stored) == set(data.good.values())


def assert_finishes_cleanly(credo: Credo, register: Register, data: RecordsFile) -> None:
    """Re-running the file stores what is missing; the audit chain and standings hold."""
    missing = len(data.good) - stored_count(register)
    final = credo.run("import", str(data.path), "--authority", AUTHORITY)
    assert final.returncode == 1, final.stderr  # 1: the file's bad rows are refused again
    already = len(data.good) - missing + data.retries
    summary = f"{missing} stored, {already} already on file, {data.rejected} rejected"
    assert summary in final.stdout, final.stdout
    assert_exactly_the_good_rows(register, data)
    verify = credo.run("audit", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "audit chain intact" in verify.stdout
    assert f"{len(data.good)} records" in verify.stdout
    assert standings_match_a_fresh_rescore(register) == []


def test_an_import_killed_at_random_points_ends_with_exactly_the_good_rows(
    register: Register, database_url: str, tmp_path: Path
) -> None:
    seeded(register)
    data = records_file(tmp_path / "discipline.csv", rows=ROWS, subjects=SUBJECTS)
    assert data.path.stat().st_size > 4 * 1024 * 1024
    credo = Credo(
        tmp_path / "home",
        database_url,
        extra_env={"CREDO_CHUNK_BYTES": f"{CHUNK_BYTES}", "CREDO_COMMIT_ROWS": f"{COMMIT_ROWS}"},
    )
    rng = random.Random(20260315)
    # The first kill lands while the process starts or validates its first chunk; each later
    # one once a seeded share of the file is stored, after a further seeded random delay, so
    # it falls anywhere in a batch: parsing, inserting, writing notices or committing.
    plan = [(0.0, rng.uniform(0.3, 1.0))]
    plan += [
        (share, rng.uniform(0.0, 0.3))
        for share in sorted(rng.uniform(0.1, 0.8) for _ in range(KILLS))
    ]
    kills: list[Kill] = []
    for share, delay in plan:
        before = stored_count(register)
        process = credo.start("import", str(data.path), "--authority", AUTHORITY)
        _wait_until_stored(register, process, int(share * len(data.good)))
        time.sleep(delay)
        assert process.poll() is None, f"the import finished before the kill at {share:.0%}"
        kill_group(process)
        assert process.returncode == -9
        after = stored_count(register)
        assert before <= after <= len(data.good)  # what a batch committed stays committed
        kills.append(Kill(delay, before, after))
    assert kills[-1].stored_after > 0, kills
    assert any(0 < k.stored_before < k.stored_after for k in kills), kills  # re-runs resumed
    assert_finishes_cleanly(credo, register, data)


def stored_count(register: Register) -> int:
    """How many records of AUTHORITY are stored."""
    with register.read() as conn:
        query = text("SELECT count(*) FROM records WHERE authority_id = :a")
        return int(conn.execute(query, {"a": AUTHORITY}).scalar_one())


def _wait_until_stored(
    register: Register, process: subprocess.Popen[bytes], rows: int, within: float = 60
) -> None:
    """Block until `rows` records are stored (or the process ended, or time ran out)."""
    deadline = time.monotonic() + within
    while rows and stored_count(register) < rows:
        if process.poll() is not None or time.monotonic() > deadline:
            return
        time.sleep(0.02)


def test_an_import_killed_while_it_rescores_leaves_standings_to_the_re_run(
    own_pg_database: str, tmp_path: Path
) -> None:
    """PostgreSQL: the import's batches share the register lock and its closing rescore takes
    it alone, so holding the lock shared stops the import exactly between its last commit and
    its rescore; killed there, the re-run (which stores nothing) must still rescore."""
    pg_url = own_pg_database
    with open_register(pg_url, tmp_path) as register:
        seeded(register)
        data = records_file(tmp_path / "discipline.csv", rows=3_000, subjects=SUBJECTS, seed=7)
        credo = Credo(tmp_path / "home", pg_url, extra_env={"CREDO_CHUNK_BYTES": f"{CHUNK_BYTES}"})
        holder = create_engine(pg_url)
        try:
            with holder.connect() as conn:
                conn.execute(text("SELECT pg_advisory_lock_shared(7276002)"))
                process = credo.start("import", str(data.path), "--authority", AUTHORITY)
                deadline = time.monotonic() + 60
                while len(stored_rows(register)) < len(data.good) and time.monotonic() < deadline:
                    assert process.poll() is None, "the import ended before its rescore"
                    time.sleep(0.1)
                waiting = _waits_for_the_register_lock(pg_url, process)
                assert waiting, "the import is not waiting to rescore"
                kill_group(process)
                conn.execute(text("SELECT pg_advisory_unlock_shared(7276002)"))
            assert_exactly_the_good_rows(register, data)
            assert standings_match_a_fresh_rescore(register) != []  # the rescore never ran
            assert_finishes_cleanly(credo, register, data)
        finally:
            holder.dispose()


def _waits_for_the_register_lock(
    url: str, process: subprocess.Popen[bytes], within: float = 30
) -> bool:
    """Whether a session of the import waits on the exclusive register lock (in its database)."""
    engine = create_engine(url)
    try:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline and process.poll() is None:
            with engine.connect() as conn:
                waiting = conn.execute(
                    text(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                        "AND NOT granted AND mode = 'ExclusiveLock' AND objid = 7276002 "
                        "AND database = (SELECT oid FROM pg_database "
                        "WHERE datname = current_database())"
                    )
                ).scalar_one()
            if waiting:
                return True
            time.sleep(0.1)
        return False
    finally:
        engine.dispose()
