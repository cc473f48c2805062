"""Register benchmark: credo beside a careful hand-written baseline, on SQLite and PostgreSQL.

Generates a synthetic register (credo.synthetic, the generator `credo demo` uses) of N
subjects and M records filed by one authority, then measures on each engine:

1. import: `credo import FILE --authority bench-registry` run as a child process (rows/s,
   wall time, peak RSS), beside a hand-written loader into a table of the same shape;
2. full rescore: credo's `rescore_everyone` beside a hand-written GROUP BY rescore;
3. standing lookups: `subject_standing` p50/p99 beside a hand-written query and scorer,
   right after the rescores (cold: credo looks up first) and again on a settled server
   (checkpointed, the records table and its subject index read once);
4. a full rescore 180 days later, when records have ended and many subjects change lists.

Run from the repository root with the project's interpreter:

    .venv/bin/python bench/bench_register.py --subjects 20000 --records 200000

Figures go to stdout (a table at the end) and to bench/out/results-<engine>.json.
This is a benchmark, not a test: it checks that the answers agree, never how fast they are.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import platform
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import conninfo, sql
from sqlalchemy import select

from credo import synthetic
from credo.bootstrap import build_register
from credo.domain.policy import Policy
from credo.domain.policy_load import load_policy
from credo.services.filing import subject_standing
from credo.services.register import Register
from credo.services.rescoring import rescore_everyone
from credo.settings import Settings
from credo.store.tables import standings
from credo.synthetic import Shape

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
OUT = HERE / "out"
POLICY = HERE / "policy.toml"
AUTHORITY = "bench-registry"
BIN = Path(sys.executable).parent
TODAY = date(2026, 1, 1)
BATCH = 100_000  # rows per transaction in the hand-written loaders
WARMUP = 1_000
LOOKUPS = 10_000

HAND_TABLE_COLUMNS = (
    "authority_id",
    "reference",
    "subject_id",
    "category",
    "decided_on",
    "occurred_on",
    "legal_basis",
    "summary",
    "amount",
    "evidence_uri",
    "ends_on",
    "revoked",
)


def reference_dir() -> Path:
    """The reference benchmark's directory (its scripts are copied under bench/data and run
    there beside credo's), from CREDO_REFERENCE_DIR; refused when it is not set."""
    given = os.environ.get("CREDO_REFERENCE_DIR")
    if not given or not Path(given).is_dir():
        raise SystemExit(
            "the reference benchmark is not found: set CREDO_REFERENCE_DIR to its directory "
            f"(now {given!r}), or leave the reference out (bench/README.md)"
        )
    return Path(given)


def log(message: str) -> None:
    """Progress on stderr, with the time of day."""
    print(f"[{datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- data


def generate(policy: Policy, shape: Shape, policy_text: str) -> tuple[Path, Path]:
    """Write (or reuse) the subjects CSV and the one records CSV, streaming to disk."""
    DATA.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(policy_text.encode()).hexdigest()[:8]
    subjects_csv = DATA / f"subjects-{shape.subjects}-s{shape.seed}.csv"
    records_csv = DATA / f"records-{shape.subjects}-{shape.records}-s{shape.seed}-{digest}.csv"
    if not subjects_csv.exists():
        log(f"writing {shape.subjects:,} subjects to {subjects_csv.name}")
        tmp = subjects_csv.with_suffix(".tmp")
        with tmp.open("w", newline="", encoding="utf-8") as out:
            synthetic.write_subjects_csv(shape, out)
        tmp.rename(subjects_csv)
    if not records_csv.exists():
        log(f"writing {shape.records:,} records to {records_csv.name}")
        started = time.perf_counter()
        tmp = records_csv.with_suffix(".tmp")
        with tmp.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(synthetic.FIELDS)
            for n, (authority, row) in enumerate(synthetic.records(policy, shape), 1):
                # Only bench-registry may file in the bench policy, so every reference is
                # BENCH-REGIST-<year>-<running number>: unique for the one authority.
                if authority != AUTHORITY:
                    raise SystemExit(f"generator chose {authority!r}; only {AUTHORITY} may file")
                writer.writerow([row[k] for k in synthetic.FIELDS])
                if n % 1_000_000 == 0:
                    log(f"  {n:,} records written")
        tmp.rename(records_csv)
        log(f"records written in {time.perf_counter() - started:.1f} s")
    else:
        log(f"reusing {records_csv.name}")
    return subjects_csv, records_csv


# ----------------------------------------------------------------------------- children


@dataclass
class Child:
    """A finished child process: exit code, output, wall time and peak resident memory."""

    code: int
    stdout: str
    stderr: str
    seconds: float
    peak_rss_mb: float  # the largest process of the child's tree (wait4)
    # sampled every SAMPLE_S: each process's peak, by role, and the whole tree's at once
    process_peaks_mb: dict[str, float] = field(default_factory=dict)
    peak_tree_mb: float = 0.0


SAMPLE_S = 0.2
# What each of credo's processes is, by its command line.
ROLES = (
    ("credo.services.preview_snapshot", "snapshot keeper"),
    ("multiprocessing.spawn", "validating worker"),
    ("multiprocessing.resource_tracker", "resource tracker"),
)


class TreeSampler:
    """Samples the resident memory of the launcher's child and its descendants from /proc,
    so that a peak can be told apart: which process, and all of them together."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.peaks: dict[str, float] = {}
        self.tree_peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            total = 0.0
            tree = self._tree()
            for pid in tree[1:]:  # the launcher is not counted; its one child is credo
                mb, role = _resident(pid, pid == tree[1])
                total += mb
                self.peaks[role] = max(self.peaks.get(role, 0.0), mb)
            self.tree_peak = max(self.tree_peak, total)

    def _tree(self) -> list[int]:
        children: dict[int, list[int]] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue  # gone meanwhile
                parent = int(stat.rsplit(")", 1)[1].split()[1])
                children.setdefault(parent, []).append(int(entry.name))
        found, todo = [], [self.root]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo += children.get(pid, [])
        return found


def _resident(pid: int, credo: bool) -> tuple[float, str]:
    """A process's resident MB and its role (0 when it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return 0.0, "gone"
    kb = next((line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")), "0")
    role = "credo" if credo else next((r for key, r in ROLES if key in cmdline), "other")
    return int(kb) / 1024, role


# Runs the command it is given and writes the command's own rusage to the file named first.
# The benchmark grows to hundreds of MB, and Linux counts the memory of the process that
# forks a child into that child's peak RSS (the old address space's high-water mark, kept at
# exec): forked from the benchmark, `credo import` would be charged with the benchmark's
# memory. Forked from this small launcher, it is charged with its own.
LAUNCHER = """
import json, os, subprocess, sys, time
started = time.perf_counter()
child = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(child.pid, 0)
seconds = time.perf_counter() - started
with open(sys.argv[1], "w") as out:
    json.dump({"status": status, "maxrss_kb": usage.ru_maxrss, "seconds": seconds}, out)
"""


def run_child(args: list[str], env: dict[str, str]) -> Child:
    """Run one child through the launcher, which reaps it with wait4, so that its own peak
    RSS is known; its processes are sampled meanwhile."""
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.TemporaryDirectory() as tmp,
    ):
        usage_file = Path(tmp) / "usage.json"
        launcher = [sys.executable, "-c", LAUNCHER, str(usage_file)]
        proc = subprocess.Popen(
            [*launcher, *args], env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err
        )
        with TreeSampler(proc.pid) as sampler:
            proc.wait()
        out.seek(0)
        err.seek(0)
        if not usage_file.exists():  # the launcher could not start the command
            raise SystemExit(f"{args[0]} did not start: {err.read().decode(errors='replace')}")
        usage = json.loads(usage_file.read_text())
        return Child(
            code=os.waitstatus_to_exitcode(usage["status"]),
            stdout=out.read().decode("utf-8", "replace"),
            stderr=err.read().decode("utf-8", "replace"),
            seconds=usage["seconds"],
            peak_rss_mb=usage["maxrss_kb"] / 1024,  # Linux reports kilobytes
            process_peaks_mb={k: round(v, 1) for k, v in sampler.peaks.items() if v},
            peak_tree_mb=round(sampler.tree_peak, 1),
        )


def credo(args: list[str], env: dict[str, str], what: str) -> Child:
    """Run `credo ARGS`; stop the benchmark if it fails."""
    child = run_child([str(BIN / "credo"), *args], env)
    if child.code != 0:
        raise SystemExit(
            f"{what} failed (exit {child.code}):\n{child.stdout[-2000:]}{child.stderr[-4000:]}"
        )
    return child


def parse_import(stdout: str) -> dict[str, int]:
    """The counts `credo import` prints: stored, already on file, rejected, rescored."""
    counts = {"stored": -1, "duplicates": -1, "rejected": -1, "rescored": 0}
    for line in stdout.splitlines():
        if " stored, " in line:
            head = line.rsplit(": ", 1)[1].split(", ")
            counts["stored"] = int(head[0].split()[0])
            counts["duplicates"] = int(head[1].split()[0])
            counts["rejected"] = int(head[2].split()[0])
        elif line.startswith("standings updated for "):
            counts["rescored"] = int(line.split()[3])
    return counts


# ----------------------------------------------------------------------------- the SQL


def hand_rescore_select(policy: Policy, day: str) -> str:
    """Scores and grades of every subject: GROUP BY with the policy's points and caps as CASE.

    `day` is an SQL date literal. No lists or measures: that is credo's extra work.
    """
    head = policy.policy
    branches = []
    for c in policy.categories:
        raw = f"n * {c.points}"
        if c.cap is not None:
            op = "<" if c.cap < 0 else ">"
            raw = f"CASE WHEN {raw} {op} {c.cap} THEN {c.cap} ELSE {raw} END"
        branches.append(f"WHEN '{c.id}' THEN {raw}")
    points = f"CASE category {' '.join(branches)} ELSE 0 END"
    lo, hi = head.score_min, head.score_max
    grades = " ".join(f"WHEN score >= {g.min} THEN '{g.name}'" for g in policy.grades)
    return f"""
WITH cat AS (
  SELECT subject_id, category, COUNT(*) AS n
  FROM records
  WHERE revoked = false AND decided_on <= {day} AND ends_on > {day}
  GROUP BY subject_id, category
), subj AS (
  SELECT subject_id, SUM({points}) AS delta FROM cat GROUP BY subject_id
), sc AS (
  SELECT s.id AS subject_id, {head.base_score} + COALESCE(d.delta, 0) AS raw
  FROM subjects s LEFT JOIN subj d ON d.subject_id = s.id
), cl AS (
  SELECT subject_id, CASE WHEN raw < {lo} THEN {lo} WHEN raw > {hi} THEN {hi} ELSE raw END
    AS score FROM sc
)
SELECT subject_id, score, CASE {grades} ELSE '{policy.grades[-1].name}' END AS grade FROM cl
"""


LATER_DAYS = 180
NOTICE_COUNT_SQL = "SELECT COUNT(*) FROM notices WHERE kind = 'standing.changed'"
CHECK_SQL = """
SELECT COUNT(*), COALESCE(SUM(CASE WHEN h.subject_id IS NULL OR h.score <> s.score
                                   OR h.grade <> s.grade THEN 1 ELSE 0 END), 0)
FROM standings s LEFT JOIN hand_scores h ON h.subject_id = s.subject_id
"""
SUMMARY_SQL = "SELECT SUM(score) FROM standings"
GRADES_SQL = "SELECT grade, COUNT(*) FROM standings GROUP BY grade ORDER BY grade"
LOOKUP_SQL = "SELECT category, decided_on, ends_on, revoked FROM records WHERE subject_id = {}"


class HandScorer:
    """A hand-written scorer over (category, decided_on, ends_on, revoked) rows."""

    def __init__(self, policy: Policy) -> None:
        self.rules = {c.id: (c.points, c.cap) for c in policy.categories}
        self.base = policy.policy.base_score
        self.lo, self.hi = policy.policy.score_min, policy.policy.score_max
        self.grades = [(g.min, g.name) for g in policy.grades]

    def __call__(self, rows: list[Any], day: Any) -> tuple[int, str]:
        counts: dict[str, int] = {}
        for category, decided, ends, revoked in rows:
            if not revoked and decided <= day < ends:
                counts[category] = counts.get(category, 0) + 1
        total = self.base
        for category, n in counts.items():
            points, cap = self.rules[category]
            s = n * points
            if cap is not None and (s < cap if cap < 0 else s > cap):
                s = cap
            total += s
        score = min(max(total, self.lo), self.hi)
        for low, name in self.grades:
            if score >= low:
                return score, name
        return score, self.grades[-1][1]


def hand_rows(path: Path, policy: Policy) -> Iterator[list[tuple[Any, ...]]]:
    """The records file as batches of table rows, with end dates from the policy."""
    valid_for = {c.id: c.valid_for for c in policy.categories}
    ends: dict[tuple[str, str], str] = {}  # (category, decided_on) -> ends_on, memoised
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader)
        ix = [header.index(k) for k in synthetic.FIELDS]
        batch: list[tuple[Any, ...]] = []
        for values in reader:
            ref, sid, cat, decided, occurred, basis, summary, amount, uri = (values[i] for i in ix)
            key = (cat, decided)
            end = ends.get(key)
            if end is None:
                end = valid_for[cat].add_to(date.fromisoformat(decided)).isoformat()
                ends[key] = end
            batch.append(
                (
                    AUTHORITY,
                    ref,
                    sid,
                    cat,
                    decided,
                    occurred or None,
                    basis,
                    summary,
                    amount or None,
                    uri or None,
                    end,
                    False,
                )
            )
            if len(batch) >= BATCH:
                yield batch
                batch = []
        if batch:
            yield batch


def percentiles(micros: list[float]) -> tuple[float, float]:
    """p50 and p99 (nearest rank)."""
    ordered = sorted(micros)
    n = len(ordered)
    return ordered[max(0, (n * 50 + 99) // 100 - 1)], ordered[max(0, (n * 99 + 99) // 100 - 1)]


# ----------------------------------------------------------------------------- engines


class Engine:
    """Where one engine's register lives and how the hand-written side talks to it."""

    name = ""
    sql_true = "true"

    def prepare(self) -> None:
        """Start from an empty database."""

    def remove(self) -> None:
        """Drop what prepare created."""

    def env(self) -> dict[str, str]:
        """Environment for `credo` children."""
        raise NotImplementedError

    def settings(self) -> Settings:
        """Settings for the in-process register."""
        raise NotImplementedError

    def day_literal(self, day: date) -> str:
        """A date literal in this engine's SQL."""
        raise NotImplementedError

    def hand_load(self, path: Path, policy: Policy) -> int:
        """Load the records file into hand_records; returns the rows loaded."""
        raise NotImplementedError

    def hand_rescore(self, select_sql: str) -> None:
        """CREATE TABLE hand_scores AS the select, in one transaction."""
        raise NotImplementedError

    def query(self, text: str) -> list[tuple[Any, ...]]:
        """Rows of a read-only query on credo's database."""
        raise NotImplementedError

    def hand_lookups(
        self, ids: list[str], scorer: HandScorer, day: date
    ) -> tuple[list[float], list[tuple[int, str]]]:
        """Time the hand-written lookup of each id; returns microseconds and results."""
        raise NotImplementedError

    def after_load(self) -> None:
        """Anything the engine does between loading and rescoring."""

    def settle(self) -> None:
        """Let the engine write out what the bulk phases left in its log (a checkpoint),
        then read the records table and its subject index once, as a running server has
        them in memory: whichever side looks up first otherwise pays for reading both
        sides' pages from disk (read-ahead brings in its neighbours' records too)."""

    def facts(self) -> dict[str, Any]:
        """Version and settings worth recording."""
        return {}

    def size_mb(self) -> float:
        """Size of credo's database."""
        return 0.0


class SqliteEngine(Engine):
    """credo's embedded store: one SQLite file under CREDO_HOME."""

    name = "sqlite"

    def __init__(self) -> None:
        self.home = DATA / "sqlite"
        self.db = self.home / "credo.sqlite3"
        self.hand_db = self.home / "hand.sqlite3"

    def prepare(self) -> None:
        shutil.rmtree(self.home, ignore_errors=True)
        self.home.mkdir(parents=True)

    def remove(self) -> None:
        shutil.rmtree(self.home, ignore_errors=True)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("CREDO_DATABASE_URL", None)
        env["CREDO_HOME"] = str(self.home)
        env["CREDO_TODAY"] = TODAY.isoformat()
        return env

    def settings(self) -> Settings:
        return Settings(home=self.home, database_url=None, today=TODAY)

    def day_literal(self, day: date) -> str:
        return f"'{day.isoformat()}'"

    def _connect(self, path: Path) -> sqlite3.Connection:
        conn = sqlite3.connect(path, isolation_level=None)
        for pragma in (
            "journal_mode=WAL",
            "synchronous=NORMAL",
            "cache_size=-262144",
            "temp_store=MEMORY",
        ):
            conn.execute(f"PRAGMA {pragma}")
        return conn

    def hand_load(self, path: Path, policy: Policy) -> int:
        conn = self._connect(self.hand_db)
        conn.execute(
            """CREATE TABLE hand_records (
              id INTEGER PRIMARY KEY, authority_id VARCHAR(64) NOT NULL,
              reference VARCHAR(128) NOT NULL, version INTEGER NOT NULL DEFAULT 1,
              subject_id VARCHAR(64) NOT NULL, category VARCHAR(64) NOT NULL,
              decided_on DATE NOT NULL, occurred_on DATE, legal_basis VARCHAR(500) NOT NULL,
              summary VARCHAR(2000) NOT NULL, amount NUMERIC(18, 2), evidence_uri VARCHAR(2000),
              ends_on DATE NOT NULL, revoked BOOLEAN NOT NULL DEFAULT false)"""
        )
        conn.execute("CREATE UNIQUE INDEX uq_hand ON hand_records (authority_id, reference)")
        conn.execute("CREATE INDEX ix_hand_subject ON hand_records (subject_id)")
        insert = (
            f"INSERT INTO hand_records ({', '.join(HAND_TABLE_COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in HAND_TABLE_COLUMNS)})"
        )
        for batch in hand_rows(path, policy):
            conn.execute("BEGIN")
            conn.executemany(insert, batch)
            conn.execute("COMMIT")
        count = int(conn.execute("SELECT COUNT(*) FROM hand_records").fetchone()[0])
        conn.close()
        return count

    def hand_rescore(self, select_sql: str) -> None:
        conn = self._connect(self.db)
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("DROP TABLE IF EXISTS hand_scores")
        conn.execute(f"CREATE TABLE hand_scores AS {select_sql}")
        conn.execute("COMMIT")
        conn.close()

    def query(self, text: str) -> list[tuple[Any, ...]]:
        conn = self._connect(self.db)
        try:
            return list(conn.execute(text))
        finally:
            conn.close()

    def hand_lookups(
        self, ids: list[str], scorer: HandScorer, day: date
    ) -> tuple[list[float], list[tuple[int, str]]]:
        conn = self._connect(self.db)
        text = LOOKUP_SQL.format("?")
        iso = day.isoformat()
        micros, results = [], []
        conn.execute("BEGIN")
        for i, sid in enumerate(ids):
            started = time.perf_counter_ns()
            result = scorer(conn.execute(text, (sid,)).fetchall(), iso)
            elapsed = (time.perf_counter_ns() - started) / 1000
            if i >= WARMUP:
                micros.append(elapsed)
                results.append(result)
        conn.execute("COMMIT")
        conn.close()
        return micros, results

    def settle(self) -> None:
        conn = self._connect(self.db)
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.execute("SELECT count(*), max(summary) FROM records NOT INDEXED").fetchall()
            conn.execute(
                "SELECT count(*) FROM records INDEXED BY ix_records_subject_id "
                "WHERE subject_id >= ''"
            ).fetchall()
        finally:
            conn.close()

    def facts(self) -> dict[str, Any]:
        return {"sqlite": sqlite3.sqlite_version}

    def size_mb(self) -> float:
        return sum(p.stat().st_size for p in self.home.glob("credo.sqlite3*")) / 2**20


class PostgresEngine(Engine):
    """credo's production store: a database the benchmark creates and drops itself."""

    name = "postgres"

    def __init__(self, url: str) -> None:
        self.url = url
        self.dbname = conninfo.conninfo_to_dict(url).get("dbname") or "credo_bench"
        self.home = DATA / "postgres"

    def _admin(self) -> psycopg.Connection[Any]:
        last: Exception | None = None
        for maintenance in ("postgres", "test"):
            try:
                return psycopg.connect(
                    conninfo.make_conninfo(self.url, dbname=maintenance), autocommit=True
                )
            except psycopg.OperationalError as exc:
                last = exc
        raise SystemExit(f"cannot reach PostgreSQL at {self.url}: {last}")

    def prepare(self) -> None:
        shutil.rmtree(self.home, ignore_errors=True)
        self.home.mkdir(parents=True)
        with self._admin() as admin:
            name = sql.Identifier(self.dbname)
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
            admin.execute(sql.SQL("CREATE DATABASE {}").format(name))

    def remove(self) -> None:
        with self._admin() as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(self.dbname)
                )
            )
        shutil.rmtree(self.home, ignore_errors=True)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["CREDO_HOME"] = str(self.home)
        env["CREDO_DATABASE_URL"] = self.url
        env["CREDO_TODAY"] = TODAY.isoformat()
        return env

    def settings(self) -> Settings:
        return Settings(home=self.home, database_url=self.url, today=TODAY)

    def day_literal(self, day: date) -> str:
        return f"DATE '{day.isoformat()}'"

    def _connect(self, autocommit: bool = False) -> psycopg.Connection[Any]:
        return psycopg.connect(self.url, autocommit=autocommit)

    def hand_load(self, path: Path, policy: Policy) -> int:
        with self._connect() as conn:
            conn.execute(
                """CREATE TABLE hand_records (
                  id SERIAL PRIMARY KEY, authority_id VARCHAR(64) NOT NULL,
                  reference VARCHAR(128) NOT NULL, version INTEGER NOT NULL DEFAULT 1,
                  subject_id VARCHAR(64) NOT NULL, category VARCHAR(64) NOT NULL,
                  decided_on DATE NOT NULL, occurred_on DATE, legal_basis VARCHAR(500) NOT NULL,
                  summary VARCHAR(2000) NOT NULL, amount NUMERIC(18, 2),
                  evidence_uri VARCHAR(2000), ends_on DATE NOT NULL,
                  revoked BOOLEAN NOT NULL DEFAULT false)"""
            )
            conn.execute("CREATE UNIQUE INDEX uq_hand ON hand_records (authority_id, reference)")
            conn.execute("CREATE INDEX ix_hand_subject ON hand_records (subject_id)")
            conn.commit()
            copy_sql = f"COPY hand_records ({', '.join(HAND_TABLE_COLUMNS)}) FROM STDIN"
            for batch in hand_rows(path, policy):
                with conn.cursor() as cur, cur.copy(copy_sql) as copy:
                    for row in batch:
                        copy.write_row(row)
                conn.commit()
            row = conn.execute("SELECT COUNT(*) FROM hand_records").fetchone()
            assert row is not None
            return int(row[0])

    def hand_rescore(self, select_sql: str) -> None:
        with self._connect() as conn:
            conn.execute("DROP TABLE IF EXISTS hand_scores")
            conn.execute(f"CREATE TABLE hand_scores AS {select_sql}")

    def query(self, text: str) -> list[tuple[Any, ...]]:
        with self._connect() as conn:
            return list(conn.execute(text))

    def after_load(self) -> None:
        # What autovacuum would do on its own some time after a bulk load; done here so
        # both rescores see the same statistics and visibility map every run.
        with self._connect(autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE records")
            conn.execute("VACUUM ANALYZE subjects")

    def settle(self) -> None:
        with self._connect(autocommit=True) as conn:
            conn.execute("CHECKPOINT")
            conn.execute("SELECT count(*) FROM records")
            conn.execute("SET enable_seqscan = off")
            conn.execute("SELECT count(*) FROM records WHERE subject_id >= ''")

    def hand_lookups(
        self, ids: list[str], scorer: HandScorer, day: date
    ) -> tuple[list[float], list[tuple[int, str]]]:
        text = LOOKUP_SQL.format("%s")
        micros, results = [], []
        with self._connect() as conn, conn.cursor() as cur:
            for i, sid in enumerate(ids):
                started = time.perf_counter_ns()
                cur.execute(text, (sid,), prepare=True)
                result = scorer(cur.fetchall(), day)
                elapsed = (time.perf_counter_ns() - started) / 1000
                if i >= WARMUP:
                    micros.append(elapsed)
                    results.append(result)
        return micros, results

    def facts(self) -> dict[str, Any]:
        names = ("server_version", "shared_buffers", "work_mem", "max_parallel_workers_per_gather")
        with self._connect() as conn:
            settings = {n: conn.execute(f"SHOW {n}").fetchone()[0] for n in names}
        return {"postgres": settings, "psycopg": psycopg.__version__}

    def size_mb(self) -> float:
        rows = self.query(f"SELECT pg_database_size('{self.dbname}')")
        return int(rows[0][0]) / 2**20


# ----------------------------------------------------------------------------- the run


@dataclass
class Figures:
    """What one engine measured."""

    engine: str
    values: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds taken by fn(), and its result."""
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def bench_engine(
    fig: Figures,
    engine: Engine,
    policy: Policy,
    shape: Shape,
    subjects_csv: Path,
    records_csv: Path,
    runs: int,
    partitions: int = 0,
) -> None:
    """Every figure for one engine, on a fresh database, into `fig` as they come."""
    v, checks = fig.values, fig.checks
    log(f"{engine.name}: fresh database, policy, subjects")
    engine.prepare()
    env = engine.env()
    credo(["init", "--policy", str(POLICY)], env, "credo init --policy")
    if partitions and engine.name == "postgres":
        credo(["partition", "--partitions", str(partitions)], env, "credo partition")
        fig.checks["partitions"] = partitions
    child = credo(["subjects", "import", str(subjects_csv)], env, "credo subjects import")
    v["subjects_import_s"] = round(child.seconds, 3)

    # 1. import
    log(f"{engine.name}: credo import of {shape.records:,} records")
    rejects = records_csv.with_name(records_csv.name + ".rejects.csv")
    child = run_child(
        [str(BIN / "credo"), "import", str(records_csv), "--authority", AUTHORITY], env
    )
    counts = parse_import(child.stdout)
    checks["import_exit_code"] = child.code
    checks["import_counts"] = counts
    if child.code != 0 or counts["stored"] != shape.records:
        fig.problems.append(
            f"credo import exit {child.code}, counts {counts}: "
            f"{child.stderr.strip()[-1500:]} (rejects in {rejects.name})"
        )
    v["import_s"] = round(child.seconds, 3)
    v["import_rows_per_s"] = round(shape.records / child.seconds)
    v["import_peak_rss_mb"] = round(child.peak_rss_mb, 1)
    v["import_peak_tree_rss_mb"] = child.peak_tree_mb
    checks["import_process_peaks_mb"] = child.process_peaks_mb
    v["import_rescored_subjects"] = counts["rescored"]
    snapshot = next(
        (
            line.split(": ", 1)[1]
            for line in child.stdout.splitlines()
            if line.startswith("policy preview snapshot: ")
        ),
        "",
    )
    checks["import_snapshot"] = snapshot
    if snapshot.startswith("not kept"):  # a cache, but the import should keep it
        fig.problems.append(f"credo import: policy preview snapshot {snapshot}")
    log(
        f"{engine.name}: credo import {child.seconds:.1f} s, peak RSS {child.peak_rss_mb:.0f} MB "
        f"(by process: {child.process_peaks_mb}; all together {child.peak_tree_mb:.0f} MB); "
        f"preview snapshot {snapshot or '(none: the keeper did not run)'}"
    )
    v["database_mb"] = round(engine.size_mb(), 1)  # credo's database alone

    log(f"{engine.name}: hand-written loader")
    seconds, loaded = timed(lambda: engine.hand_load(records_csv, policy))
    checks["hand_loaded"] = loaded
    if loaded != shape.records:
        fig.problems.append(f"hand loader stored {loaded} rows, expected {shape.records}")
    v["hand_load_s"] = round(seconds, 3)
    v["hand_load_rows_per_s"] = round(shape.records / seconds)
    v["import_ratio"] = round(v["import_s"] / seconds, 2)
    log(f"{engine.name}: hand-written loader {seconds:.1f} s")
    engine.after_load()

    # 2. full rescore, alternating credo and hand-written, median of `runs`
    register = build_register(engine.settings())
    try:
        hand_sql = hand_rescore_select(policy, engine.day_literal(TODAY))
        credo_times, hand_times = [], []
        for n in range(runs):
            log(f"{engine.name}: rescore run {n + 1}/{runs}")
            seconds, (count, _) = timed(lambda: rescore_everyone(register, TODAY, actor="bench"))
            credo_times.append(seconds)
            checks["rescored"] = count
            seconds, _ = timed(lambda: engine.hand_rescore(hand_sql))
            hand_times.append(seconds)
        v["rescore_s"] = round(statistics.median(credo_times), 3)
        v["rescore_runs_s"] = [round(t, 3) for t in credo_times]
        v["hand_rescore_s"] = round(statistics.median(hand_times), 3)
        v["hand_rescore_runs_s"] = [round(t, 3) for t in hand_times]
        v["rescore_ratio"] = round(v["rescore_s"] / v["hand_rescore_s"], 2)
        v["rescore_rows_per_s"] = round(shape.records / v["rescore_s"])
        total, mismatched = engine.query(CHECK_SQL)[0]
        checks["rescore_standings"] = int(total)
        checks["rescore_mismatches_vs_hand"] = int(mismatched)
        (score_sum,) = engine.query(SUMMARY_SQL)[0]
        checks["score_sum"] = int(score_sum or 0)
        checks["grades"] = {g: int(c) for g, c in engine.query(GRADES_SQL)}
        if count != shape.subjects or int(total) != shape.subjects or int(mismatched):
            fig.problems.append(
                f"rescore: credo scored {count} subjects, {total} standings stored, "
                f"{mismatched} differ from the hand-written rescore"
            )

        # 3. standing lookups
        log(f"{engine.name}: {LOOKUPS:,} standing lookups (+{WARMUP:,} warm-up), each side")
        micros, mine = credo_lookups(register, shape, seed=1)
        v["lookup_p50_us"], v["lookup_p99_us"] = (round(x, 1) for x in percentiles(micros))
        ids = lookup_ids(shape, seed=2)
        hand_micros, theirs = engine.hand_lookups(ids, HandScorer(policy), TODAY)
        v["hand_lookup_p50_us"], v["hand_lookup_p99_us"] = (
            round(x, 1) for x in percentiles(hand_micros)
        )
        v["lookup_p50_ratio"] = round(v["lookup_p50_us"] / v["hand_lookup_p50_us"], 2)
        stored = stored_standings(register, [*mine, *zip(ids[WARMUP:], theirs, strict=True)])
        bad_credo = sum(1 for sid, got in mine if stored.get(sid) != got)
        bad_hand = sum(
            1 for sid, got in zip(ids[WARMUP:], theirs, strict=True) if stored.get(sid) != got
        )
        # The same again on a settled server: checkpointed, its lookup pages read once.
        # Right after six full rescores the first side to look up reads from disk.
        log(f"{engine.name}: checkpoint and warm-up, then the lookups again")
        engine.settle()
        settled, _ = credo_lookups(register, shape, seed=3)
        v["settled_lookup_p50_us"], v["settled_lookup_p99_us"] = (
            round(x, 1) for x in percentiles(settled)
        )
        settled_hand, _ = engine.hand_lookups(lookup_ids(shape, seed=4), HandScorer(policy), TODAY)
        v["settled_hand_lookup_p50_us"], v["settled_hand_lookup_p99_us"] = (
            round(x, 1) for x in percentiles(settled_hand)
        )
        checks["lookup_mismatches_vs_stored"] = bad_credo
        checks["hand_lookup_mismatches_vs_stored"] = bad_hand
        if bad_credo or bad_hand:
            fig.problems.append(
                f"lookups: {bad_credo} credo and {bad_hand} hand-written standings differ "
                "from the stored standings"
            )

        # 4. a rescore on a later day, where records have ended and many subjects change
        # lists and measures (the daily sweep after a long pause, or a first rescore)
        later = TODAY + timedelta(days=LATER_DAYS)
        log(f"{engine.name}: full rescore as of {later} ({LATER_DAYS} days later)")
        before = engine.query(NOTICE_COUNT_SQL)[0][0]
        seconds, _ = timed(lambda: rescore_everyone(register, later, actor="bench"))
        v["later_rescore_s"] = round(seconds, 3)
        v["later_rescore_changed"] = int(engine.query(NOTICE_COUNT_SQL)[0][0]) - int(before)
    finally:
        register.engine.dispose()


def lookup_ids(shape: Shape, seed: int) -> list[str]:
    """Warm-up plus measured subject ids, uniformly at random."""
    rng = random.Random(seed)
    return [
        synthetic.subject_id(rng.randrange(shape.subjects) + 1) for _ in range(WARMUP + LOOKUPS)
    ]


def credo_lookups(
    register: Register, shape: Shape, seed: int
) -> tuple[list[float], list[tuple[str, tuple[int, str]]]]:
    """Time subject_standing for each id inside one open read connection."""
    ids = lookup_ids(shape, seed)
    micros: list[float] = []
    results: list[tuple[str, tuple[int, str]]] = []
    with register.read() as conn:
        _, policy = register.active_policy(conn)
        for i, sid in enumerate(ids):
            started = time.perf_counter_ns()
            standing = subject_standing(conn, policy, sid, TODAY)
            elapsed = (time.perf_counter_ns() - started) / 1000
            if i >= WARMUP:
                micros.append(elapsed)
                results.append((sid, (standing.score, standing.grade)))
    return micros, results


def stored_standings(
    register: Register, pairs: list[tuple[str, tuple[int, str]]]
) -> dict[str, tuple[int, str]]:
    """The rescore's stored (score, grade) of these subjects."""
    wanted = sorted({sid for sid, _ in pairs})
    found: dict[str, tuple[int, str]] = {}
    with register.read() as conn:
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            query = select(standings.c.subject_id, standings.c.score, standings.c.grade).where(
                standings.c.subject_id.in_(chunk)
            )
            for sid, score, grade in conn.execute(query):
                found[sid] = (int(score), str(grade))
    return found


# ----------------------------------------------------------------------------- report

ROWS = [
    ("credo import, rows/s", "import_rows_per_s", "{:,}"),
    ("credo import, wall s", "import_s", "{:.2f}"),
    ("credo import, peak RSS MB (largest process)", "import_peak_rss_mb", "{:.0f}"),
    ("credo import, peak RSS MB (processes together)", "import_peak_tree_rss_mb", "{:.0f}"),
    ("hand-written load, rows/s", "hand_load_rows_per_s", "{:,}"),
    ("hand-written load, wall s", "hand_load_s", "{:.2f}"),
    ("import ratio credo/hand", "import_ratio", "{:.2f}"),
    ("credo full rescore, s", "rescore_s", "{:.3f}"),
    ("hand-written rescore, s", "hand_rescore_s", "{:.3f}"),
    ("rescore ratio credo/hand", "rescore_ratio", "{:.2f}"),
    ("credo lookup p50 us", "lookup_p50_us", "{:.1f}"),
    ("credo lookup p99 us", "lookup_p99_us", "{:.1f}"),
    ("hand-written lookup p50 us", "hand_lookup_p50_us", "{:.1f}"),
    ("hand-written lookup p99 us", "hand_lookup_p99_us", "{:.1f}"),
    ("lookup p50 ratio credo/hand", "lookup_p50_ratio", "{:.2f}"),
    ("settled: credo lookup p50 us", "settled_lookup_p50_us", "{:.1f}"),
    ("settled: credo lookup p99 us", "settled_lookup_p99_us", "{:.1f}"),
    ("settled: hand lookup p50 us", "settled_hand_lookup_p50_us", "{:.1f}"),
    ("settled: hand lookup p99 us", "settled_hand_lookup_p99_us", "{:.1f}"),
    ("credo rescore 180 days later, s", "later_rescore_s", "{:.3f}"),
    ("  subjects whose lists/measures changed", "later_rescore_changed", "{:,}"),
    ("credo subjects import, s", "subjects_import_s", "{:.2f}"),
    ("credo database, MB", "database_mb", "{:.0f}"),
]


def table(results: list[Figures]) -> str:
    """The figures as a text table, one column per engine."""
    width = max(len(label) for label, _, _ in ROWS)
    head = f"{'':<{width}}" + "".join(f"{r.engine:>14}" for r in results)
    lines = [head, "-" * len(head)]
    for label, key, fmt in ROWS:
        cells = []
        for r in results:
            value = r.values.get(key)
            cells.append(f"{'-' if value is None else fmt.format(value):>14}")
        lines.append(f"{label:<{width}}" + "".join(cells))
    return "\n".join(lines)


def write_report(fig: Figures, shape: Shape, facts: dict[str, Any]) -> Path:
    """bench/out/results-<engine>.json: the figures, the checks and what they ran on."""
    report = {
        "engine": fig.engine,
        "shape": {
            "subjects": shape.subjects,
            "records": shape.records,
            "seed": shape.seed,
            "as_of": TODAY.isoformat(),
        },
        "figures": fig.values,
        "checks": fig.checks,
        "problems": fig.problems,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            **facts,
        },
        "credo_batch_size": Settings().batch_size,
        "at": datetime.now().isoformat(timespec="seconds"),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"results-{fig.engine}.json"
    path.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    log(f"{fig.engine}: figures written to {path.relative_to(HERE.parent)}")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subjects", type=int, default=1_000_000)
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--engines", default="sqlite,postgres", help="comma-separated")
    parser.add_argument(
        "--pg-url",
        default="postgresql://postgres@127.0.0.1:5432/credo_bench",
        help="database to create and drop (it must not hold anything you need)",
    )
    parser.add_argument("--runs", type=int, default=3, help="rescore runs (median reported)")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument(
        "--partitions",
        type=int,
        default=0,
        help="PostgreSQL: hash-partition credo's register by subject into N first (credo "
        "partition); the hand-written baselines stay unpartitioned",
    )
    parser.add_argument(
        "--keep-data", action="store_true", help="keep the CSV files and the databases"
    )
    args = parser.parse_args(argv)
    if min(args.subjects, args.records, args.runs) < 1:
        parser.error("--subjects, --records and --runs must be at least 1")
    names = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = set(names) - {"sqlite", "postgres"}
    if unknown or not names:
        parser.error(f"unknown engines: {', '.join(sorted(unknown)) or '(none)'}")

    policy_text = POLICY.read_text(encoding="utf-8")
    policy = load_policy(policy_text, str(POLICY))
    shape = Shape(subjects=args.subjects, records=args.records, today=TODAY, seed=args.seed)
    subjects_csv, records_csv = generate(policy, shape, policy_text)

    results: list[Figures] = []
    try:
        for name in names:
            engine: Engine = SqliteEngine() if name == "sqlite" else PostgresEngine(args.pg_url)
            partitioned = args.partitions and name == "postgres"
            fig = Figures(f"{name}-{args.partitions}p" if partitioned else name)
            results.append(fig)
            facts: dict[str, Any] = {}
            try:
                bench_engine(
                    fig,
                    engine,
                    policy,
                    shape,
                    subjects_csv,
                    records_csv,
                    args.runs,
                    args.partitions,
                )
                facts = engine.facts()
            except (Exception, SystemExit) as exc:  # report it and go on with the next engine
                fig.problems.append(f"stopped: {exc}")
                log(f"{name}: stopped: {exc}")
            finally:
                if not args.keep_data:
                    try:
                        engine.remove()
                    except Exception as exc:
                        log(f"{name}: could not remove its database: {exc}")
            write_report(fig, shape, facts)
    finally:
        if not args.keep_data:
            for path in (subjects_csv, records_csv):
                path.unlink(missing_ok=True)
                path.with_name(path.name + ".rejects.csv").unlink(missing_ok=True)

    print()
    print(f"credo register benchmark: {shape.subjects:,} subjects, {shape.records:,} records")
    print(table(results))
    failed = False
    for fig in results:
        for problem in fig.problems:
            failed = True
            print(f"PROBLEM ({fig.engine}): {problem}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
