"""Sweep benchmark: expiry work is proportional to the subjects that changed.

Builds a register of N subjects and M records (the same synthetic data as
bench_register.py) on SQLite or PostgreSQL, stores every standing as of day 0, then moves
the clock forward in steps chosen so that about 0.1 %, 1 % and 5 % of the subjects have a
record that ends within the step, and times `credo sweep` for each step beside one full
rescore of the whole register.

    .venv/bin/python bench/bench_sweep.py --subjects 100000 --records 1000000
    .venv/bin/python bench/bench_sweep.py --engine postgres  # in a database of its own

This is a benchmark, not a test: it checks the swept standings against the pure scorer
on a sample, never how fast anything is.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_register import OUT, POLICY, TODAY, generate, log
from credo.bootstrap import build_register
from credo.clock import FixedDateClock
from credo.domain.policy_load import load_policy
from credo.domain.subjects import SUBJECT_FIELDS
from credo.services.filing import subject_standing
from credo.services.importing import import_file
from credo.services.policies import activate_policy
from credo.services.rescoring import rescore_everyone
from credo.services.sources import read_rows
from credo.services.subjects import import_subjects
from credo.services.sweep import sweep
from credo.settings import Settings
from credo.store.db import dateparam
from credo.synthetic import Shape

AUTHORITY = "bench-registry"


def step_for(conn: Any, since: date, share: float, subjects: int) -> date:
    """The first day D after `since` such that a record counted by about `share` of the
    subjects' standings ends in (since, D] (binary search over the window's end)."""
    want = max(1, int(subjects * share))

    def touched(day: date) -> int:
        value = conn.execute(
            text("SELECT COUNT(*) FROM standings WHERE next_end > :s AND next_end <= :d"),
            {"s": dateparam(conn, since), "d": dateparam(conn, day)},
        ).scalar_one()
        return int(value)

    low, high = 1, 3 * 365
    while low < high:
        middle = (low + high) // 2
        if touched(since + timedelta(days=middle)) >= want:
            high = middle
        else:
            low = middle + 1
    return since + timedelta(days=low)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subjects", type=int, default=1_000_000)
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--engine", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument(
        "--pg-url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/credo_sweep",
        help="database to create and drop (it must not hold anything you need)",
    )
    parser.add_argument(
        "--from-sqlite",
        type=Path,
        help="start from a copy of this SQLite register (e.g. the one bench_register.py "
        "--keep-data leaves in bench/data/sqlite/) instead of importing the data again",
    )
    args = parser.parse_args(argv)

    policy_text = POLICY.read_text(encoding="utf-8")
    policy = load_policy(policy_text)
    shape = Shape(subjects=args.subjects, records=args.records, today=TODAY, seed=args.seed)
    clock = FixedDateClock(TODAY)
    with tempfile.TemporaryDirectory(prefix="credo-sweep-", dir=OUT.parent / "data") as home:
        url = None if args.engine == "sqlite" else args.pg_url
        if url:
            fresh_database(url)
        if args.from_sqlite:
            log(f"copying {args.from_sqlite}")
            for suffix in ("", "-wal"):
                source = Path(f"{args.from_sqlite}{suffix}")
                if source.exists():
                    shutil.copyfile(source, Path(home) / f"credo.sqlite3{suffix}")
        register = build_register(Settings(home=Path(home), database_url=url), clock=clock)
        if not args.from_sqlite:
            import_register(register, policy, shape, policy_text)
        _rest(args, register, clock)
    if url:
        fresh_database(url, create=False)
    return 0


def fresh_database(url: str, *, create: bool = True) -> None:
    """Drop the database `url` names (and create it again, empty, unless told not to)."""
    target = make_url(url)
    admin = target.set(database="postgres").set(drivername="postgresql")
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
        name = sql.Identifier(target.database or "")
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        if create:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(name))


def import_register(register: Any, policy: Any, shape: Shape, policy_text: str) -> None:
    """A fresh register with the bench policy and the synthetic data."""
    subjects_csv, records_csv = generate(policy, shape, policy_text)
    activate_policy(register, policy_text, actor="bench", comment="bench")
    log("importing subjects and records")
    with subjects_csv.open("rb") as stream:
        import_subjects(
            register,
            read_rows(stream, "csv", SUBJECT_FIELDS),
            actor="bench",
            source=subjects_csv.name,
            batch_size=50_000,
        )
    started = time.perf_counter()
    with records_csv.open("rb") as stream:
        report = import_file(
            register,
            stream,
            "csv",
            authority_id=AUTHORITY,
            actor="bench",
            source=records_csv.name,
            chunk_bytes=8 << 20,
            workers=1,
        )
    log(f"{report.stored:,} records imported in {time.perf_counter() - started:.1f} s")


def _rest(args: Any, register: Any, clock: FixedDateClock) -> None:
    """Time one full rescore, then the sweeps, and check a sample against the pure scorer."""
    started = time.perf_counter()
    rescore_everyone(register, TODAY, actor="bench")
    full = time.perf_counter() - started
    log(f"full rescore: {full:.2f} s")
    results = []
    day = TODAY
    for share in (0.001, 0.01, 0.05):
        with register.read() as conn:
            target = step_for(conn, day, share, args.subjects)
        clock.day = target
        started = time.perf_counter()
        done = sweep(register, actor="bench")
        took = time.perf_counter() - started
        results.append(
            {
                "share": share,
                "from": day.isoformat(),
                "to": target.isoformat(),
                "rescored": done.rescored,
                "seconds": round(took, 3),
                "us_per_subject": round(took * 1e6 / max(done.rescored, 1), 1),
                "vs_full_rescore": round(took / full, 4),
            }
        )
        log(f"sweep {day} -> {target}: {done.rescored:,} subjects in {took:.3f} s")
        day = target
    with register.read() as conn:
        _, pol = register.active_policy(conn)
        rng = random.Random(1)
        ids = [f"s-{rng.randrange(1, args.subjects + 1):07d}" for _ in range(500)]
        for sid in ids:
            row = conn.execute(
                text("SELECT score, grade, lists, measures FROM standings WHERE subject_id = :s"),
                {"s": sid},
            ).one()
            pure = subject_standing(conn, pol, sid, day)
            assert tuple(row) == (
                pure.score,
                pure.grade,
                ",".join(pure.lists),
                ",".join(pure.measures),
            ), sid
    register.engine.dispose()
    print(
        f"\nsweep on {args.engine}: {args.subjects:,} subjects, {args.records:,} records; "
        f"full rescore {full:.2f} s"
    )
    print(
        f"{'changed share':>14} {'window':>25} {'rescored':>10} {'seconds':>9} "
        f"{'us/subject':>11} {'of full':>8}"
    )
    for r in results:
        print(
            f"{r['share']:>14.1%} {r['from'] + '..' + r['to']:>25} {r['rescored']:>10,} "
            f"{r['seconds']:>9.3f} {r['us_per_subject']:>11.1f} {r['vs_full_rescore']:>8.1%}"
        )
    OUT.mkdir(exist_ok=True)
    (OUT / f"sweep-{args.engine}.json").write_text(
        json.dumps(
            {
                "subjects": args.subjects,
                "records": args.records,
                "full_rescore_s": round(full, 3),
                "sweeps": results,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    raise SystemExit(main())
