"""The Spark engine: `credo snapshot` and `credo rescore --engine spark` on both stores.

Spark rescores must store exactly what the in-database rescore stores and what the pure
scorer computes. One local Spark session (local[2]) serves the whole test session; the CLI
test starts `credo` as a real process with its own. Without Java or pyspark the Spark tests
skip with one line saying why; under CI=true they fail instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from credo import synthetic
from credo.clock import FixedDateClock
from credo.domain.errors import ConflictError, CredoError, ValidationError
from credo.domain.policy_load import load_policy
from credo.services.cases import object_to_record
from credo.services.policies import activate_policy
from credo.services.register import Register
from credo.services.spark_engine import (
    rescore_on_spark,
    spark_session,
    store_standings,
    take_snapshot,
)
from credo.services.subjects import import_subjects
from credo.store.snapshot import SCHEMAS, verify_snapshot, write_snapshot
from credo.store.tables import cases, records, subjects
from tests.conftest import TODAY
from tests.factories import WORKED_POLICY, example_policy, file_rows, record, rows, seed_register
from tests.factories import subject as subject_row

# The random registers of the SQL-vs-pure property test: records, objections, corrections,
# revocations and repairs through the real services, under a policy with caps, an excluding
# list and measures restricted to their contexts.
from tests.integration.test_cases_scoring import (
    CASES_POLICY,
    Case,
    _decide,
    _iso,
    _open,
    _wipe,
    both_ways,
    case_st,
    file,
    record_st,
)

CREDO_BIN = Path(sys.executable).parent / "credo"
HISTORY = ("list_periods", "measure_periods", "measure_events", "notices")


def _spark_problem() -> str | None:
    """None when pyspark and a Java runtime are here, else a one-line reason."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "pyspark is not installed (pip install -e '.[spark]')"
    home = os.environ.get("JAVA_HOME")
    if not (home and (Path(home) / "bin" / "java").exists()) and not shutil.which("java"):
        return "no Java runtime on PATH or JAVA_HOME (Spark needs Java 17)"
    return None


def require_spark() -> None:
    """Skip (or, under CI, fail) when Spark cannot run here."""
    problem = _spark_problem()
    if problem is None:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{problem} (CI=true: the Spark tests must run)", pytrace=False)
    pytest.skip(problem)


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """One local Spark session for every Spark test (starting one takes seconds)."""
    require_spark()
    conf = {
        "spark.sql.shuffle.partitions": "4",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
    }
    session = spark_session("local[2]", conf)
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def standings_of(register: Register) -> dict[str, tuple[Any, ...]]:
    """Stored standings: subject -> (score, grade, lists, measures, next_end as ISO text)."""
    with register.read() as conn:
        found = conn.execute(
            text("SELECT subject_id, score, grade, lists, measures, next_end FROM standings")
        )
        return {
            r.subject_id: (r.score, r.grade, r.lists, r.measures, _iso(r.next_end)) for r in found
        }


def history_counts(register: Register) -> dict[str, int]:
    """Rows of the tables a rescore appends membership history and notices to."""
    with register.read() as conn:
        return {t: conn.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one() for t in HISTORY}


def spark_equals_database_and_pure(register: Register, spark: Any, day: date) -> int:
    """Rescore on Spark, then in the database: same standings as each other and as the pure
    scorer, and the database rescore finds no membership left to record. Returns subjects."""
    done = rescore_on_spark(register, spark=spark, as_of=day)
    assert done.rescored_in_database == 0
    on_spark = standings_of(register)
    assert len(on_spark) == done.subjects
    history = history_counts(register)
    in_database, pure = both_ways(register, day)
    assert on_spark == in_database, day
    assert in_database == pure, day
    assert history_counts(register) == history, day
    return done.subjects


# ----------------------------------------------------------------------------- property


@settings(
    max_examples=6,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    filed=st.lists(record_st, min_size=1, max_size=10),
    opened=st.lists(case_st, max_size=8),
    offsets=st.lists(st.integers(-500, 900), min_size=1, max_size=2),
)
def test_spark_rescore_equals_database_and_pure_scorer_on_random_registers(
    register: Register,
    clock: FixedDateClock,
    spark: Any,
    filed: list[tuple[str, int, int]],
    opened: list[Case],
    offsets: list[int],
) -> None:
    _wipe(register)
    clock.day = TODAY
    seed_register(register, subjects=4, policy=CASES_POLICY)
    refs = []
    for n, (category, subject, days_before) in enumerate(filed):
        refs.append(f"R{n}")
        file(register, (f"R{n}", f"s-{subject:03d}", category, TODAY - timedelta(days_before)))
    events = [(case[0], 0, n) for n, case in enumerate(opened)]
    events += [(case[0] + case[3], 1, n) for n, case in enumerate(opened) if case[3] is not None]
    case_ids: dict[int, int] = {}
    for day, decision, n in sorted(events):
        clock.day = TODAY + timedelta(days=day)
        try:
            if not decision:
                case_ids[n] = _open(register, refs, opened[n])
            elif n in case_ids:
                _decide(register, case_ids[n], opened[n])
        except CredoError:
            pass  # e.g. a repair of an expired record, a record already revoked
    days = {TODAY + timedelta(days=o) for o in offsets}
    if events:  # the day an objection falls due or is decided, where suspensions turn
        day, _, n = max(events)
        days.add(TODAY + timedelta(days=day + (10 if opened[n][3] is None else 0)))
    for day in sorted(days):
        assert spark_equals_database_and_pure(register, spark, day) == 4


def test_spark_rescore_equals_the_database_on_the_example_policy(
    register: Register, spark: Any
) -> None:
    seed_register(register, subjects=0, policy=example_policy())
    shape = synthetic.Shape(subjects=200, records=2_000, today=TODAY, seed=11)
    import_subjects(register, rows(synthetic.subjects(shape)), actor="test", source="t")
    by_authority: dict[str, list[dict[str, str]]] = {}
    for authority, row in synthetic.records(load_policy(example_policy()), shape):
        by_authority.setdefault(authority, []).append(row)
    for authority, items in by_authority.items():
        assert file_rows(register, authority, items).rejected == 0
    for day in (TODAY, TODAY - timedelta(days=400)):
        assert spark_equals_database_and_pure(register, spark, day) == 200


# ----------------------------------------------------------------------------- stale snapshots


def _worked(register: Register) -> None:
    """DESIGN's worked example: s-001 scores 820, grade D, on `dishonest`, as of TODAY."""
    seed_register(register, subjects=3)
    for authority, items in {
        "city-court": [
            record("C-1", "s-001", "court.order_defiance", "2026-01-10"),
            record("C-2", "s-001", "court.order_defiance", "2026-03-01"),
        ],
        "city-tax": [record("T-1", "s-001", "tax.arrears", "2025-02-01")],
        "city-civil": [record("V-1", "s-001", "civic.volunteering", "2026-02-01")],
    }.items():
        assert file_rows(register, authority, items).stored == len(items)


def test_subjects_written_after_the_snapshot_are_rescored_in_the_database(
    register: Register, spark: Any, tmp_path: Path
) -> None:
    _worked(register)
    take_snapshot(register, tmp_path / "snap")
    # After the snapshot: a new subject, a new record, and an objection suspending C-1.
    import_subjects(register, rows([subject_row(9)]), actor="test", source="late")
    file_rows(register, "city-tax", [record("T-2", "s-002", "tax.arrears", "2026-03-10")])
    with register.read() as conn:
        c1 = conn.execute(select(records.c.id).where(records.c.reference == "C-1")).scalar_one()
    object_to_record(register, "s-001", c1, "Not me.")
    done = rescore_on_spark(register, spark=spark, snapshot=str(tmp_path / "snap"))
    assert (done.subjects, done.rescored_in_database) == (3, 3)
    assert standings_of(register) == {
        "s-001": (920, "C", "dishonest", "hr.no_promotion", "2027-02-01"),  # V-1 ends
        "s-002": (940, "C", "", "tax.strict", "2027-03-10"),  # T-2 ends
        "s-003": (1000, "B", "", "", None),
        "s-009": (1000, "B", "", "", None),
    }
    _, pure = both_ways(register, TODAY)
    assert standings_of(register) == pure


def test_a_snapshot_under_another_policy_version_is_refused(
    register: Register, spark: Any, tmp_path: Path
) -> None:
    _worked(register)
    take_snapshot(register, tmp_path / "snap")
    activate_policy(
        register, WORKED_POLICY.replace('version = "1"', 'version = "2"'), actor="t", comment="v2"
    )
    before = standings_of(register)
    with pytest.raises(ConflictError, match="take a new snapshot"):
        rescore_on_spark(register, spark=spark, snapshot=str(tmp_path / "snap"))
    assert standings_of(register) == before


def test_standings_missing_a_subject_of_the_snapshot_are_refused(
    register: Register, tmp_path: Path
) -> None:
    _worked(register)
    manifest = take_snapshot(register, tmp_path / "snap")
    _, pure = both_ways(register, TODAY)
    before = standings_of(register)
    assert before == pure
    computed = []  # as Spark gives them: (subject, score, grade, lists, measures, next_end)
    for sid in ("s-001", "s-002", "s-003"):
        *standing, end = pure[sid]
        computed.append((sid, *standing, None if end is None else date.fromisoformat(end)))
    with pytest.raises(ValidationError, match="2 standings for the 3 subjects"):
        store_standings(register, manifest, computed[:2], TODAY)
    assert standings_of(register) == before
    assert store_standings(register, manifest, computed, TODAY) == (3, 0)
    assert standings_of(register) == pure


# ----------------------------------------------------------------------------- snapshots


def test_a_snapshot_round_trips_the_scoring_tables(register: Register, tmp_path: Path) -> None:
    _worked(register)
    with register.read() as conn:
        c2 = conn.execute(select(records.c.id).where(records.c.reference == "C-2")).scalar_one()
    object_to_record(register, "s-001", c2, "Wrong person.")
    with register.read() as conn:  # small chunks and files: several row groups and parts
        manifest = write_snapshot(
            conn, tmp_path / "snap", as_of=TODAY, now=register.clock.now(), chunk=2, rows_per_file=2
        )
    assert verify_snapshot(tmp_path / "snap").data == manifest.data
    assert len(manifest.data["tables"]["records"]["files"]) == 2
    assert manifest.as_of == TODAY
    assert manifest.watermarks["records"] == 4
    with register.read() as conn:
        for name, table in (("subjects", subjects), ("records", records), ("cases", cases)):
            columns = [table.c[c] for c in SCHEMAS[name].names]
            stored = [tuple(r) for r in conn.execute(select(*columns).order_by(table.c.id))]
            read = pq.read_table(tmp_path / "snap" / name, schema=SCHEMAS[name]).to_pylist()
            assert [tuple(r.values()) for r in read] == stored, name
            assert manifest.rows(name) == len(stored)
        policy_text = conn.execute(text("SELECT text FROM policy_versions WHERE active")).scalar()
    assert (tmp_path / "snap" / "policy.toml").read_text(encoding="utf-8") == policy_text
    assert manifest.rows("cases") == 1 and manifest.rows("subjects") == 3


def test_a_changed_snapshot_file_fails_verification(register: Register, tmp_path: Path) -> None:
    _worked(register)
    manifest = take_snapshot(register, tmp_path / "snap")
    part = tmp_path / "snap" / manifest.data["tables"]["records"]["files"][0]["path"]
    part.write_bytes(part.read_bytes()[:-1] + b"\0")
    with pytest.raises(ValidationError, match="does not match the manifest"):
        verify_snapshot(tmp_path / "snap")
    with pytest.raises(ConflictError, match="not empty"):
        take_snapshot(register, tmp_path / "snap")


# ----------------------------------------------------------------------------- command line


def run_credo(register: Register, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`credo ...` as a real process on the test's register."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDO_")}
    env |= {
        "CREDO_HOME": str(home),
        "CREDO_TODAY": TODAY.isoformat(),
        "CREDO_DATABASE_URL": register.engine.url.render_as_string(hide_password=False),
    }
    return subprocess.run(
        [str(CREDO_BIN), *args], env=env, capture_output=True, text=True, timeout=600, check=False
    )


# The command end to end, on the production store only: its own JVM takes 20 s, and the
# tests above run the same rescore in process on both stores.
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_credo_rescore_engine_spark_stores_the_worked_example(
    register: Register, tmp_path: Path
) -> None:
    require_spark()
    _worked(register)
    home, snap = tmp_path / "home", tmp_path / "snap"
    assert run_credo(register, home, "rescore", "--engine", "nope").returncode == 2
    cluster = run_credo(
        register, home, "rescore", "--engine", "spark", "--master", "spark://h:7077"
    )
    assert cluster.returncode == 1 and "--snapshot DIR" in cluster.stderr
    taken = run_credo(register, home, "snapshot", str(snap))
    assert taken.returncode == 0, taken.stderr
    assert "3 subjects, 4 records, 0 objections (worked@1, as of 2026-03-15)" in taken.stdout
    args = ["rescore", "--engine", "spark", "--master", "local[1]", "--snapshot", str(snap)]
    done = run_credo(register, home, *args)
    assert done.returncode == 0, done.stderr
    assert "3 subjects rescored on Spark as of 2026-03-15" in done.stdout
    worked = (820, "D", "dishonest", "hr.no_promotion", "2027-02-01")  # V-1 ends first
    assert standings_of(register)["s-001"] == worked
    with register.read() as conn:
        payload = conn.execute(
            text("SELECT payload FROM audit_entries ORDER BY seq DESC LIMIT 1")
        ).scalar_one()
    entry = json.loads(payload)
    assert (entry["engine"], entry["subjects"]) == ("spark", 3)
    assert entry["snapshot"] == json.loads((snap / "manifest.json").read_text())["checksum"]
