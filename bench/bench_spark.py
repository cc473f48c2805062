"""Spark benchmark: `credo snapshot` and `credo rescore --engine spark` on a register of N subjects.

Builds the synthetic register of bench_register.py (or copies a SQLite register it left),
times the in-database full rescore, then the Parquet snapshot, the Spark session start and
the Spark rescore (scoring on Spark, and storing the standings back), and checks that the
Spark standings equal the in-database ones row for row.

    .venv/bin/python bench/bench_spark.py --subjects 100000 --records 1000000
    .venv/bin/python bench/bench_spark.py --engine postgres --master local[2]
    .venv/bin/python bench/bench_spark.py --master spark://host:7077 --snapshot-dir /shared/snap

This is a benchmark, not a test: it reports differences, never asserts on time.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_register import OUT, POLICY, TODAY, log
from bench_sweep import import_register
from credo.bootstrap import build_register
from credo.clock import FixedDateClock
from credo.domain.policy_load import load_policy
from credo.services.rescoring import rescore_everyone
from credo.services.spark_engine import rescore_on_spark, spark_session, take_snapshot
from credo.settings import Settings
from credo.synthetic import Shape

COLUMNS = "subject_id, score, grade, lists, measures"


def ensure_database(url: str) -> None:
    """Create the PostgreSQL database of `url` when it is missing (its tables get replaced)."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    target = make_url(url)
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        found = conn.execute(
            text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": target.database}
        ).first()
        if found is None:
            conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _differences(register: Any) -> int:
    """Standings rows that differ between the Spark run and the saved in-database run."""
    with register.read() as conn:
        return int(
            conn.execute(
                text(
                    f"SELECT COUNT(*) FROM (SELECT {COLUMNS} FROM standings EXCEPT "
                    f"SELECT {COLUMNS} FROM bench_db_standings) d"
                )
            ).scalar_one()
        )


def run(args: argparse.Namespace, register: Any, work: Path) -> dict[str, Any]:
    """Time every step and return the figures."""
    figures: dict[str, Any] = {}
    started = time.perf_counter()
    count, _ = rescore_everyone(register, TODAY, actor="bench")
    figures["db_rescore_s"] = round(time.perf_counter() - started, 3)
    log(f"in-database rescore: {count:,} subjects in {figures['db_rescore_s']} s")
    with register.write() as conn:
        conn.execute(text("DROP TABLE IF EXISTS bench_db_standings"))
        conn.execute(text(f"CREATE TABLE bench_db_standings AS SELECT {COLUMNS} FROM standings"))

    snap = args.snapshot_dir or work / "snapshot"
    if snap.exists():
        shutil.rmtree(snap)
    started = time.perf_counter()
    manifest = take_snapshot(register, snap)
    took = time.perf_counter() - started
    rows = sum(manifest.rows(name) for name in ("subjects", "records", "cases"))
    figures |= {
        "snapshot_s": round(took, 3),
        "snapshot_rows_per_s": round(rows / took),
        "snapshot_mb": round(_size(snap) / 1e6, 1),
    }
    log(f"snapshot: {rows:,} rows in {took:.2f} s, {figures['snapshot_mb']} MB")

    started = time.perf_counter()
    conf = {"spark.driver.memory": args.driver_memory, "spark.ui.showConsoleProgress": "false"}
    spark = spark_session(args.master, conf)
    spark.sparkContext.setLogLevel("ERROR")
    figures["spark_start_s"] = round(time.perf_counter() - started, 3)
    figures["spark_version"] = spark.version
    log(f"Spark {spark.version} on {args.master} started in {figures['spark_start_s']} s")
    runs = []
    try:
        for n in range(args.runs):
            done = rescore_on_spark(register, spark=spark, snapshot=str(snap), as_of=TODAY)
            runs.append(
                {
                    "spark_s": round(done.spark_seconds, 3),
                    "store_s": round(done.store_seconds, 3),
                    "total_s": round(done.spark_seconds + done.store_seconds, 3),
                }
            )
            log(f"Spark rescore {n + 1}: {runs[-1]}")
    finally:
        spark.stop()
    figures["spark_runs"] = runs
    best = min(runs, key=lambda r: r["total_s"])
    figures |= {"spark_best_total_s": best["total_s"], "spark_best_scoring_s": best["spark_s"]}
    figures["differences"] = _differences(register)
    with register.write() as conn:
        conn.execute(text("DROP TABLE bench_db_standings"))
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subjects", type=int, default=100_000)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--engine", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument(
        "--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/credo_bench_spark"
    )
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--driver-memory", default="4g")
    parser.add_argument("--runs", type=int, default=2, help="Spark rescores; the best counts")
    parser.add_argument(
        "--snapshot-dir", type=Path, help="where to write the snapshot (a cluster must see it)"
    )
    parser.add_argument(
        "--from-sqlite", type=Path, help="start from a copy of this SQLite register"
    )
    args = parser.parse_args(argv)

    policy_text = POLICY.read_text(encoding="utf-8")
    shape = Shape(subjects=args.subjects, records=args.records, today=TODAY, seed=args.seed)
    data = OUT.parent / "data"
    data.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="credo-spark-", dir=data) as home:
        url = None if args.engine == "sqlite" else args.pg_url
        if url:
            ensure_database(url)
        if args.from_sqlite:
            for suffix in ("", "-wal"):
                source = Path(f"{args.from_sqlite}{suffix}")
                if source.exists():
                    shutil.copyfile(source, Path(home) / f"credo.sqlite3{suffix}")
        settings = Settings(home=Path(home), database_url=url)
        register = build_register(settings, clock=FixedDateClock(TODAY))
        if not args.from_sqlite:
            import_register(register, load_policy(policy_text), shape, policy_text, url)
        with register.read() as conn:
            subjects = conn.execute(text("SELECT COUNT(*) FROM subjects")).scalar_one()
            records = conn.execute(text("SELECT COUNT(*) FROM records")).scalar_one()
        figures = {"engine": args.engine, "master": args.master, "subjects": subjects}
        figures |= {"records": records} | run(args, register, Path(home))
        register.engine.dispose()
    print(f"\nSpark rescore from {args.engine}: {subjects:,} subjects, {records:,} records")
    print(f"  in-database full rescore   {figures['db_rescore_s']:>9.2f} s")
    print(
        f"  credo snapshot             {figures['snapshot_s']:>9.2f} s  "
        f"({figures['snapshot_rows_per_s']:,} rows/s, {figures['snapshot_mb']} MB Parquet)"
    )
    print(f"  Spark session start        {figures['spark_start_s']:>9.2f} s  ({args.master})")
    print(f"  Spark scoring (best)       {figures['spark_best_scoring_s']:>9.2f} s")
    print(f"  Spark scoring + store      {figures['spark_best_total_s']:>9.2f} s")
    print(f"  standings differing from the in-database rescore: {figures['differences']}")
    OUT.mkdir(exist_ok=True)
    (OUT / f"spark-{args.engine}.json").write_text(json.dumps(figures, indent=1) + "\n")
    return 1 if figures["differences"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
