"""Full rescoring on Apache Spark over a Parquet snapshot, stored back in one transaction.

The scoring is the same generated SQL text the database runs (`RescoreSql`, dialect
"spark"): Spark reads the snapshot's Parquet tables as temp views named like the store's
tables, runs the query, and the driver streams the result into the store's `credo_fresh`
temp table, from where `credo.store.rescore` stores standings, list and measure history and
notices exactly as an in-database rescore does.

Nothing but the snapshot directory has to be visible to a cluster: the query is plain SQL
(no Python on the executors), the manifest and policy are read through Spark, and results
come back to the driver. Subjects written after the snapshot was taken are rescored inside
the database in the same transaction, so a stale snapshot never overwrites newer facts.

>>> result = rescore_on_spark(register, master="local[2]")  # doctest: +SKIP
>>> result.subjects, result.as_of
(1000, datetime.date(2026, 3, 15))
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse
from urllib.request import url2pathname

from sqlalchemy import text
from sqlalchemy.engine import Connection

from credo.domain.errors import ConflictError, ValidationError
from credo.domain.policy_load import load_policy
from credo.services.register import Register
from credo.store import audit
from credo.store.db import is_sqlite
from credo.store.rescore import RescoreSql, lock_register, rescore, rescore_all
from credo.store.snapshot import MANIFEST, SCHEMAS, Manifest, Progress, parse_manifest
from credo.store.snapshot import write_snapshot as _write_snapshot

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

# Subjects whose facts changed after the snapshot (new records or cases, decisions and other
# audited writes about them) and subjects registered after it: rescored in the database.
CHANGED_SINCE = (
    "SELECT subject_id FROM records WHERE id > :records_through "
    "UNION SELECT subject_id FROM cases WHERE id > :cases_through "
    "UNION SELECT subject_id FROM audit_entries WHERE seq > :audit_through "
    "AND subject_id IS NOT NULL "
    "UNION SELECT id FROM subjects WHERE id NOT IN (SELECT subject_id FROM standings)"
)
_FRESH = (
    "CREATE TEMP TABLE credo_fresh (subject_id VARCHAR(64) NOT NULL, score INTEGER NOT NULL, "
    "grade VARCHAR(64) NOT NULL, lists TEXT NOT NULL, measures TEXT NOT NULL, next_end DATE)"
)
Log = Callable[[str], object]
FETCH_ROWS = 250_000  # standings per partition brought to the driver (bounds its memory)


@dataclass(frozen=True)
class SparkRescore:
    """What a Spark rescore did, with its timings in seconds."""

    subjects: int
    as_of: date
    policy: str
    rescored_in_database: int
    snapshot_seconds: float
    spark_seconds: float
    store_seconds: float


def take_snapshot(
    register: Register,
    directory: Path,
    *,
    chunk: int = 100_000,
    progress: Progress = lambda table, rows: None,
) -> Manifest:
    """Write a Parquet snapshot of the register from one consistent read transaction."""
    with register.engine.connect() as conn:
        if not is_sqlite(conn):  # every table read from the same database snapshot
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            return _write_snapshot(
                conn,
                directory,
                as_of=register.clock.today(),
                now=register.clock.now(),
                chunk=chunk,
                progress=progress,
            )


def is_local(master: str) -> bool:
    """Whether a Spark master URL runs in this process (local, local[N], local[*])."""
    return master == "local" or master.startswith("local[")


def snapshot_uri(location: str) -> str:
    """A URI every Spark executor resolves alike: URIs as given, paths as absolute file URIs."""
    if "://" in location:
        return location.rstrip("/")
    return Path(location).resolve().as_uri()


def spark_session(master: str, conf: dict[str, str] | None = None) -> SparkSession:
    """A Spark session on `master` (local[2], spark://host:7077, yarn, k8s://...)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise ValidationError(
            "the spark engine needs pyspark: pip install 'credo[spark]'"
        ) from None
    java_home = os.environ.get("JAVA_HOME")
    if not (java_home and Path(java_home, "bin", "java").exists()) and not shutil.which("java"):
        raise ValidationError("the spark engine needs a Java runtime (17 or newer) on PATH")

    builder = SparkSession.builder.master(master).appName("credo-rescore")
    # Dates are calendar days: pin the session zone so no executor's clock shifts them.
    for key, value in {"spark.sql.session.timeZone": "UTC", **(conf or {})}.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def _read_text(spark: SparkSession, uri: str) -> str:
    """A small file of the snapshot: read here when local, else through Spark (hdfs://...)."""
    if uri.startswith("file:"):
        path = Path(url2pathname(urlparse(uri).path))
        if not path.is_file():
            raise ValidationError(f"{path} is missing: is this a snapshot directory?")
        return path.read_text(encoding="utf-8")
    rows = spark.read.text(uri, wholetext=True).collect()
    if len(rows) != 1:
        raise ValidationError(f"{uri} is missing from the snapshot")
    return str(rows[0][0])


def score_snapshot(
    spark: SparkSession, snapshot: str, as_of: date
) -> tuple[Manifest, DataFrame, str]:
    """Register the snapshot's tables as temp views and return (manifest, standings, label).

    The standings DataFrame has the columns subject_id, score, grade, lists, measures and
    next_end.
    """
    uri = snapshot_uri(snapshot)
    manifest = parse_manifest(_read_text(spark, f"{uri}/{MANIFEST}"))
    policy_file = manifest.data["policy"]
    policy_text = _read_text(spark, f"{uri}/{policy_file['file']}")
    if hashlib.sha256(policy_text.encode()).hexdigest() != policy_file["sha256"]:
        raise ValidationError(f"{policy_file['file']} does not match the snapshot's manifest")
    policy = load_policy(policy_text, "snapshot policy")
    for name, schema in SCHEMAS.items():
        # Exactly the files the manifest lists: a missing one fails, a stray one is not read.
        files = [f"{uri}/{entry['path']}" for entry in manifest.data["tables"][name]["files"]]
        spark.read.schema(_spark_schema(schema)).parquet(*files).createOrReplaceTempView(name)
    standings = spark.sql(
        RescoreSql(policy).select(dialect="spark", next_end=True), args={"t": as_of}
    )
    return manifest, standings, policy.label


def _spark_schema(schema: Any) -> Any:
    """The Spark schema of a snapshot table (read with it, so an empty file reads alike)."""
    from pyspark.sql import types as T

    kinds = {"string": T.StringType(), "int64": T.LongType(), "int32": T.IntegerType()}
    kinds |= {"date32[day]": T.DateType(), "bool": T.BooleanType()}
    return T.StructType([T.StructField(f.name, kinds[str(f.type)], True) for f in schema])


def _load_fresh(conn: Connection, rows: Iterable[Any], chunk: int = 50_000) -> int:
    """Fill the temp table `credo_fresh` with (subject_id, score, grade, lists, measures,
    next_end)."""
    conn.execute(text("DROP TABLE IF EXISTS credo_fresh"))
    conn.execute(text(_FRESH))
    loaded = 0
    if not is_sqlite(conn):  # COPY: one round trip for the lot
        raw = conn.connection.driver_connection
        assert raw is not None
        with raw.cursor() as cursor, cursor.copy("COPY credo_fresh FROM STDIN") as copy:
            for row in rows:
                copy.write_row(tuple(row))
                loaded += 1
        return loaded
    insert = text("INSERT INTO credo_fresh VALUES (:s, :score, :g, :l, :m, :e)")
    batch: list[dict[str, Any]] = []
    for s, score, g, lists, measures, end in rows:
        day = None if end is None else end.isoformat()  # SQLite keeps dates as ISO text
        batch.append({"s": s, "score": score, "g": g, "l": lists, "m": measures, "e": day})
        if len(batch) >= chunk:
            conn.execute(insert, batch)
            loaded, batch = loaded + len(batch), []
    if batch:
        conn.execute(insert, batch)
        loaded += len(batch)
    return loaded


def store_standings(
    register: Register,
    manifest: Manifest,
    rows: Iterable[Any],
    as_of: date,
    *,
    actor: str = "cli",
    engine: str = "spark",
) -> tuple[int, int]:
    """Store standings computed elsewhere from `manifest`'s snapshot, in one transaction.

    Returns (subjects stored, subjects rescored in the database because they changed after
    the snapshot). Refused when another policy version became active since the snapshot.
    """
    now = register.clock.now()
    with register.write() as conn:
        loaded = _load_fresh(conn, rows)
        if loaded != manifest.rows("subjects"):
            raise ValidationError(
                f"{loaded} standings for the {manifest.rows('subjects')} subjects of the snapshot"
            )
        lock_register(conn, exclusive=True)
        version_id, policy = register.active_policy(conn)
        if version_id != manifest.policy_version_id:
            raise ConflictError(
                f"the snapshot was taken under policy version {manifest.policy_version_id}, "
                f"version {version_id} ({policy.label}) is active now: take a new snapshot"
            )
        count = rescore_all(conn, policy, version_id, as_of, now, computed=True)
        marks = {f"{k}_through": v for k, v in manifest.watermarks.items()}
        changed = rescore(conn, policy, version_id, as_of, now, scope=CHANGED_SINCE, params=marks)
        audit.append(
            conn,
            actor=actor,
            action="register.rescored",
            at=now,
            payload={
                "policy": policy.label,
                "as_of": as_of.isoformat(),
                "subjects": count,
                "engine": engine,
                "snapshot": manifest.data["checksum"],
                "rescored_in_database": changed,
            },
        )
    return count, changed


@contextmanager
def _snapshot_location(
    register: Register, snapshot: str | None, master: str, log: Log
) -> Iterator[str]:
    if snapshot is not None:
        yield snapshot
        return
    if not is_local(master):
        raise ValidationError(
            f"a cluster ({master}) cannot read this machine's temporary files: take a "
            "snapshot with `credo snapshot DIR` on storage every executor sees and pass "
            "--snapshot DIR"
        )
    with tempfile.TemporaryDirectory(prefix="credo-snapshot-") as tmp:
        log(f"taking a snapshot into {tmp}")
        take_snapshot(register, Path(tmp))
        yield tmp


def rescore_on_spark(
    register: Register,
    *,
    master: str = "local[2]",
    snapshot: str | None = None,
    as_of: date | None = None,
    spark: SparkSession | None = None,
    actor: str = "cli",
    log: Log = lambda message: None,
) -> SparkRescore:
    """Rescore every subject on Spark and store the standings (see the module docstring).

    Without `snapshot` a fresh one is taken into a temporary directory (local masters only).
    Pass `spark` to reuse a session; otherwise one is started on `master` and stopped.
    """
    day = as_of or register.clock.today()
    started = time.perf_counter()
    with _snapshot_location(register, snapshot, master, log) as location:
        snapshot_seconds = time.perf_counter() - started
        session = spark or spark_session(master)
        try:
            log(f"scoring on Spark {session.version} ({session.sparkContext.master})")
            manifest, standings, label = score_snapshot(session, location, day)
            # Computed and kept on the executors before the store is locked, so filers wait
            # only for the storing step.
            standings = standings.persist()
            try:
                scored = standings.count()
                spark_done = time.perf_counter()
                # The driver fetches one partition per job: a few large ones, not hundreds.
                fetch = standings.coalesce(max(1, -(-scored // FETCH_ROWS)))
                count, changed = store_standings(
                    register,
                    manifest,
                    fetch.toLocalIterator(prefetchPartitions=True),
                    day,
                    actor=actor,
                )
            finally:
                standings.unpersist()
        finally:
            if spark is None:
                session.stop()
    return SparkRescore(
        subjects=count,
        as_of=day,
        policy=label,
        rescored_in_database=changed,
        snapshot_seconds=snapshot_seconds,
        spark_seconds=spark_done - started - snapshot_seconds,
        store_seconds=time.perf_counter() - spark_done,
    )
