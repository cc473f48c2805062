"""HTTP load benchmark: `credo serve --workers 2` on PostgreSQL at 1M subjects / 10M records.

Builds (or, with --keep-data, reuses) a synthetic register through credo's own `credo init`
/ `credo subjects import` / `credo import` (COPY-based) in its own PostgreSQL database
(`credo_bench_http`, so other benchmarks are left alone), with the benchmark policy plus the
purposes an inquiry needs. It then creates API keys, a reviewer login and open objections,
starts `credo serve --workers 2` against that database and loads it with wrk on 127.0.0.1:

1. standing: `GET /v1/subjects/{id}/standing?purpose=...`, random subjects, every request
   authenticated, purpose-checked and logged as an inquiry (+ audit entry) before it is
   answered. Afterwards the inquiries table must have grown by exactly the number of 2xx
   standing answers wrk counted (bench/http.lua ends each run with a short drain phase of
   requests that log nothing, so no answered inquiry is left uncounted in flight);
2. checks: `POST /v1/checks` with 10 random subjects per body (10 inquiries per request);
3. public search: `GET /v1/public/search?q=<surname>`;
4. reviewer queue: `GET /v1/cases?status=open` with a reviewer's session cookie.

In the same invocation it serves the minimal FastAPI endpoint of the reference benchmark in
CREDO_REFERENCE_DIR (`app_sqlite.py`: one SQLite query per request, two uvicorn workers)
and loads it with the same wrk settings, so every figure comes with a ratio
(`--no-reference` leaves it out).

Run from the repository root with the project's interpreter:

    .venv/bin/python bench/bench_http.py --subjects 20000 --records 200000 --duration 20
    .venv/bin/python bench/bench_http.py --keep-data --duration 600 --append-results

Figures go to stdout and bench/out/results-http.json (and, with --append-results, to
bench/RESULTS.md). This is a benchmark, not a test: it checks the invariants (no errors, one
inquiry per answered request, audit chain intact), never how fast anything is.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import psycopg.errors
import psycopg.sql
import sqlalchemy

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_register as br
from credo import synthetic
from credo.bootstrap import build_register
from credo.domain.policy_load import load_policy
from credo.synthetic import Shape

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
LUA = HERE / "http.lua"
TODAY = br.TODAY
log = br.log

QUERIER = "city-personnel"  # the authority whose key asks for standings
PURPOSE = "promotion-review"
CHECKER = "city-procurement"  # the authority whose key runs batch checks
CHECK_PURPOSE = "procurement-screening"
REVIEWER = "bench-reviewer"
REVIEWER_PASSWORD = "bench-reviewer-password"
CASES = 2_000  # open objections in the reviewer queue
CHECK_SIZE = 10  # subjects per POST /v1/checks body
RANDOM_PAGE_COST = 1.1  # set on the benchmark database, see prepare_actors

# What an inquiry needs and the benchmark policy leaves out: purposes naming who may ask.
PURPOSES = f"""

# Added by bench/bench_http.py: the purposes its API keys query for.
[[purposes]]
id = "{PURPOSE}"
authorities = ["{QUERIER}"]
sees = ["grade", "lists", "measures", "explanation"]
legal_basis = "Civil Servant Law (2018) arts. 45 and 64"

[[purposes]]
id = "{CHECK_PURPOSE}"
authorities = ["{CHECKER}"]
sees = ["lists", "measures"]
legal_basis = "Government Procurement Law (2014 amendment) art. 22"
"""


def policy_text() -> str:
    """The benchmark policy with the purposes the load test queries for."""
    return br.POLICY.read_text(encoding="utf-8") + PURPOSES


class HttpPostgres(br.PostgresEngine):
    """This benchmark's own PostgreSQL database and CREDO_HOME."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        default = self.db == "credo_bench_http"
        self.home = br.DATA / ("http-postgres" if default else f"http-postgres-{self.db}")

    @property
    def db(self) -> str:
        """The database's name."""
        return str(self.dbname)

    def marker(self) -> Path:
        """The file that says the kept register is complete, and of which shape."""
        return self.home / "http-register.json"


# ----------------------------------------------------------------------------- the register


def build(engine: HttpPostgres, shape: Shape, subjects_csv: Path, records_csv: Path) -> float:
    """A complete register through credo's own commands, or the kept one; returns import s.

    Resumable: credo's imports store nothing twice, so when one fails (PostgreSQL restarted
    under it, say) it is simply run again, and a finished step is not repeated.
    """
    wanted = {"subjects": shape.subjects, "records": shape.records, "seed": shape.seed}
    done = engine.marker()
    if done.exists():
        kept = json.loads(done.read_text(encoding="utf-8"))
        if {k: kept.get(k) for k in wanted} == wanted:
            log(f"reusing the kept register ({done.relative_to(ROOT)})")
            return float(kept.get("import_s", 0.0))
    env = engine.env()
    step = engine.home / "http-subjects.json"
    if not (step.exists() and json.loads(step.read_text(encoding="utf-8")) == wanted):
        log(f"{engine.db}: fresh database, policy, {shape.subjects:,} subjects")
        engine.prepare()
        policy_file = engine.home / "policy.toml"
        policy_file.write_text(policy_text(), encoding="utf-8")
        br.credo(["init", "--policy", str(policy_file)], env, "credo init --policy")
        retried(["subjects", "import", str(subjects_csv)], env, "credo subjects import")
        step.write_text(json.dumps(wanted) + "\n", encoding="utf-8")
    log(f"{engine.db}: credo import of {shape.records:,} records")
    seconds = retried(
        ["import", str(records_csv), "--authority", br.AUTHORITY], env, "credo import"
    )
    stored = pg_count(engine.url, "records")
    if stored != shape.records:
        raise SystemExit(f"{stored:,} records stored, not {shape.records:,}")
    log(f"{engine.db}: credo import {seconds:.1f} s")
    engine.after_load()
    done.write_text(json.dumps({**wanted, "import_s": round(seconds, 1)}) + "\n", encoding="utf-8")
    return seconds


def retried(args: list[str], env: dict[str, str], what: str, attempts: int = 8) -> float:
    """Run `credo ARGS` until it succeeds (it is idempotent); returns the seconds of all runs."""
    seconds = 0.0
    for attempt in range(1, attempts + 1):
        child = br.run_child([str(br.BIN / "credo"), *args], env)
        seconds += child.seconds
        if child.code == 0:
            return seconds
        log(f"{what} failed (exit {child.code}, attempt {attempt}): {child.stderr.strip()[-300:]}")
        time.sleep(15)
    raise SystemExit(f"{what} failed {attempts} times")


@dataclass
class Actors:
    """Credentials the load generator sends."""

    query_key: str
    check_key: str
    reviewer_cookie: str
    open_cases: int


def prepare_actors(engine: HttpPostgres, shape: Shape) -> Actors:
    """Fresh API keys, the reviewer's login and (once) open objections for the queue."""
    from sqlalchemy import func, select, text

    from credo.domain.errors import ConflictError
    from credo.services.accounts import add_user, login
    from credo.services.cases import object_to_record
    from credo.services.keys import add_key
    from credo.store.tables import cases

    register = build_register(engine.settings())
    try:
        query_key = add_key(register, QUERIER, actor="bench")
        check_key = add_key(register, CHECKER, actor="bench")
        with contextlib.suppress(ConflictError):  # kept from an earlier run
            add_user(register, REVIEWER, REVIEWER_PASSWORD, "reviewer", actor="bench")
        token, _ = login(register, REVIEWER, REVIEWER_PASSWORD, client="bench")
        with register.read() as conn:
            open_cases = conn.execute(
                select(func.count()).select_from(cases).where(cases.c.status == "open")
            ).scalar_one()
        wanted = min(CASES, shape.subjects // 10)
        if open_cases < wanted:
            log(f"filing {wanted - open_cases:,} objections for the reviewer queue")
            step = max(1, shape.subjects // wanted)
            ids = [synthetic.subject_id(n) for n in range(1, shape.subjects + 1, step)]
            with register.read() as conn:
                rows = conn.execute(
                    text(
                        "SELECT DISTINCT ON (subject_id) subject_id, id FROM records "
                        "WHERE subject_id = ANY(:ids) AND NOT EXISTS (SELECT 1 FROM cases c "
                        "WHERE c.subject_id = records.subject_id) ORDER BY subject_id, id"
                    ),
                    {"ids": ids},
                ).all()
            for subject_id, record_id in rows[: wanted - open_cases]:
                object_to_record(
                    register, subject_id, int(record_id), "The decision names the wrong person."
                )
            with register.read() as conn:
                open_cases = conn.execute(
                    select(func.count()).select_from(cases).where(cases.c.status == "open")
                ).scalar_one()
    finally:
        register.engine.dispose()
    # What autovacuum does on its own within a minute of the objections: fresh statistics, so
    # the standing query probes cases through its record_id index instead of scanning it.
    with psycopg.connect(engine.url, autocommit=True) as conn:
        conn.execute("ANALYZE cases")
        conn.execute("ANALYZE api_keys")
        # The register is served from memory (or SSD): with the stock random_page_cost of 4
        # the planner hash-joins the whole cases table into every standing lookup rather than
        # probe ix_cases_record_id for the subject's few records (docs/performance.md).
        conn.execute(
            psycopg.sql.SQL("ALTER DATABASE {} SET random_page_cost = {}").format(
                psycopg.sql.Identifier(engine.db), psycopg.sql.Literal(RANDOM_PAGE_COST)
            )
        )
    return Actors(query_key, check_key, f"credo_session={token}", int(open_cases))


def pg_count(url: str, table: str) -> int:
    """Rows in one of credo's tables."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


def cancel_leftovers(engine: HttpPostgres, grace: float = 3.0) -> int:
    """Cancel the database's statements still running `grace` seconds after wrk stopped
    (searches whose clients gave up), so they do not load the next endpoint's run."""
    time.sleep(grace)
    with psycopg.connect(engine.url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT COUNT(pg_cancel_backend(pid)) FROM pg_stat_activity WHERE datname = %s "
            "AND state = 'active' AND pid <> pg_backend_pid() AND query NOT LIKE 'INSERT%%'",
            (engine.db,),
        ).fetchone()
    return int(row[0]) if row else 0


def settled_count(url: str, table: str, quiet: float = 1.0, limit: float = 60.0) -> int:
    """Rows in a table once it has stopped growing for `quiet` seconds (requests the server
    was still answering when wrk stopped are then counted too)."""
    deadline = time.monotonic() + limit
    count = pg_count(url, table)
    while time.monotonic() < deadline:
        time.sleep(quiet)
        again = pg_count(url, table)
        if again == count:
            break
        count = again
    return count


def audit_tail_ok(url: str, since_seq: int) -> tuple[int, int]:
    """Check the chain from `since_seq` on: (entries checked, broken links)."""
    from credo.store.audit import entry_hash

    checked = broken = 0
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT seq, at, actor, action, subject_id, payload, digest, prev_hash, hash "
            "FROM audit_entries WHERE seq >= %s ORDER BY seq",
            (since_seq,),
        )
        prev: tuple[int, str] | None = None
        for seq, at, actor, action, subject_id, payload, digest, prev_hash, hash_ in rows:
            checked += 1
            ok = entry_hash(prev_hash, seq, at, actor, action, subject_id, payload, digest) == hash_
            if prev is not None and (seq != prev[0] + 1 or prev_hash != prev[1]):
                ok = False
            broken += 0 if ok else 1
            prev = (seq, hash_)
    return checked, broken


def audit_head(url: str) -> int:
    """The last audit sequence number."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM audit_entries").fetchone()
    assert row is not None
    return int(row[0])


# ----------------------------------------------------------------------------- plans


# auto_explain for one transaction: the plans of nested statements, with their buffers, sent
# to the client (a superuser's session, as the benchmark's is).
AUTO_EXPLAIN = (
    "LOAD 'auto_explain'; SET LOCAL auto_explain.log_min_duration = 0; "
    "SET LOCAL auto_explain.log_analyze = on; SET LOCAL auto_explain.log_buffers = on; "
    "SET LOCAL auto_explain.log_nested_statements = on; SET LOCAL client_min_messages = log"
)


def explain(engine: HttpPostgres, shape: Shape) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of every statement the measured endpoints run, as they run
    them, on the benchmark database (the inquiry insert inside a transaction rolled back)."""
    from credo.services.inquiries import _LOG, Inquiry, _log_params
    from credo.services.public import search
    from credo.services.standing import _LOOKUP_PG
    from credo.store.repository import FACTS_COLUMNS, FACTS_JOIN

    # The public search's statements as it runs them: captured from the driver, then
    # explained one by one with the same parameters.
    searched: list[tuple[str, str, Any]] = []
    register = build_register(engine.settings())

    def capture(_c: Any, _cur: Any, statement: str, params: Any, _ctx: Any, _many: bool) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")) and params:
            searched.append(
                (f"public search 'wang', statement {len(searched) + 1}", statement, params)
            )

    try:
        sqlalchemy.event.listen(register.engine, "before_cursor_execute", capture)
        search(register, "wang")
    finally:
        register.engine.dispose()
    rng = random.Random(11)
    subject = synthetic.subject_id(rng.randrange(shape.subjects) + 1)
    ids = [synthetic.subject_id(rng.randrange(shape.subjects) + 1) for _ in range(CHECK_SIZE)]
    # about what one group commit holds at 1,000 req/s (597,339 inquiries in 82,105 entries)
    batch = [synthetic.subject_id(rng.randrange(shape.subjects) + 1) for _ in range(7)]
    statements: list[tuple[str, str, Any]] = [
        (
            "standing: key, active policy, subject and its records in one statement",
            _LOOKUP_PG,
            (subject, "0123456789ab", subject),
        ),
        (
            "checks: the subjects' records and objections, one statement",
            f"SELECT r.subject_id, {FACTS_COLUMNS} FROM {FACTS_JOIN} "
            "WHERE r.subject_id = ANY(%s) ORDER BY r.subject_id, r.id",
            (ids,),
        ),
        (
            f"inquiry log: a group commit of {len(batch)} inquiries, one call of "
            "credo_log_inquiries (rolled back; the plans of the statements inside it as "
            "auto_explain reports them)",
            _LOG,
            _log_params(
                [Inquiry(s, QUERIER, PURPOSE, TODAY, datetime.now(UTC), "api") for s in batch]
            ),
        ),
        (
            "checks: which of the asked subjects are registered",
            "SELECT subjects.id FROM subjects WHERE subjects.id = ANY(%s)",
            (ids,),
        ),
        *searched,
        (
            "reviewer queue: open cases by due date, one page",
            "SELECT * FROM cases WHERE status = 'open' ORDER BY due_on, id LIMIT 50 OFFSET 500",
            None,
        ),
    ]
    out: list[str] = []
    nested: list[str] = []
    with psycopg.connect(engine.url) as conn:
        # The statements inside a function (the inquiry log's) show their plans through
        # auto_explain, whose log lines reach this client as notices.
        conn.add_notice_handler(lambda notice: nested.append(notice.message_primary or ""))
        for title, statement, params in statements:
            out.append(f"-- {title}\n{statement}\n")
            conn.execute("SET statement_timeout = '120s'")
            conn.execute(AUTO_EXPLAIN)
            nested.clear()
            try:
                rows = conn.execute(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", params).fetchall()
            except psycopg.errors.QueryCanceled:
                conn.rollback()
                out.append("(EXPLAIN ANALYZE did not finish in 120 s: the plan without ANALYZE)")
                rows = conn.execute(f"EXPLAIN {statement}", params).fetchall()
            out.extend(str(row[0]) for row in rows)
            for message in nested:
                _, found, text = message.partition("Query Text:")
                if found and not text.strip().startswith("EXPLAIN"):
                    out.extend(["", "inside it: " + text.strip()])
            out.append("")
            conn.rollback()
    text = "\n".join(out)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "http-explain.txt").write_text(text, encoding="utf-8")
    return text


# ----------------------------------------------------------------------------- servers


@dataclass
class Server:
    """A running uvicorn (credo serve or the reference app) and its processes."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    logfile: Path

    def pids(self) -> list[int]:
        """The main process and its worker processes."""
        found = [self.proc.pid]
        for status in Path("/proc").glob("[0-9]*/status"):
            try:
                text = status.read_text()
            except OSError:
                continue
            match = re.search(r"^PPid:\s+(\d+)", text, re.M)
            if match and int(match.group(1)) == self.proc.pid:
                found.append(int(status.parent.name))
        return found

    def peak_rss_mb(self) -> dict[str, float]:
        """Peak resident memory (VmHWM) of the main process and of each worker, in MB."""
        peaks: dict[str, float] = {}
        for n, pid in enumerate(self.pids()):
            try:
                text = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            match = re.search(r"^VmHWM:\s+(\d+) kB", text, re.M)
            if match:
                peaks["main" if n == 0 else f"worker{n}"] = round(int(match.group(1)) / 1024, 1)
        return peaks

    def stop(self) -> None:
        """SIGTERM, then wait (uvicorn stops its workers)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User + system CPU seconds used so far by each of these processes."""
    ticks = os.sysconf("SC_CLK_TCK")
    found: dict[int, float] = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[pid] = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return found


def cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds used between two readings (processes that ended meanwhile are missed)."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def postgres_pids(dbname: str) -> list[int]:
    """The PostgreSQL backends serving this database, and the WAL writer."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().decode("utf-8", "replace")
        except OSError:
            continue
        if text.startswith("postgres: ") and (f" {dbname} " in text or "walwriter" in text):
            found.append(int(cmdline.parent.name))
    return found


def wait_ready(
    url: str, proc: subprocess.Popen[bytes], logfile: Path, seconds: float = 120
) -> None:
    """Poll until the server answers 200, or stop the benchmark with its log."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited ({proc.returncode}):\n{logfile.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"server did not answer {url} within {seconds} s")


def start_credo(engine: HttpPostgres, port: int, workers: int) -> Server:
    """`credo serve --workers N` against the benchmark database."""
    env = engine.env()
    # The public search is rate limited per client address; wrk is one address.
    env["CREDO_PUBLIC_REQUESTS_PER_MINUTE"] = str(10**9)
    OUT.mkdir(parents=True, exist_ok=True)
    logfile = OUT / "http-credo-serve.log"
    with logfile.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(br.BIN / "credo"),
                "serve",
                "--workers",
                str(workers),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-access-log",  # as the reference app runs; every lookup is an inquiry
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    wait_ready(f"http://127.0.0.1:{port}/healthz", proc, logfile)
    return Server("credo", proc, port, logfile)


REFERENCE_HOME = br.DATA / "reference-http"


def reference_ready() -> bool:
    """Whether the copy of the reference benchmark is built (`prepare_reference`)."""
    return (REFERENCE_HOME / "data" / "register.ready").exists()


def prepare_reference(ref_python: str) -> Path:
    """A copy of the reference benchmark with its data and its SQLite register, built once."""
    home = REFERENCE_HOME
    if reference_ready():
        return home
    source = br.reference_dir()
    log(f"reference: copying {source}, generating its data and SQLite register")
    (home / "data").mkdir(parents=True, exist_ok=True)
    for name in ("app_sqlite.py", "common.py", "gen_data.py", "wrk_random.lua"):
        shutil.copy2(source / name, home / name)
    subprocess.run([ref_python, "gen_data.py"], cwd=home, check=True, stdout=subprocess.DEVNULL)
    # The loader of its bench_sqlite.py (same schema, batches, pragmas and index), run once.
    loader = (
        "import sqlite3, pyarrow.parquet as pq, pyarrow.compute as pc\n"
        "from common import *\n"
        "con = sqlite3.connect('data/register.sqlite', isolation_level=None)\n"
        "for p in ('journal_mode=WAL', 'synchronous=NORMAL', 'cache_size=-2000000',"
        " 'temp_store=MEMORY', 'mmap_size=4000000000'):\n"
        "    con.execute('PRAGMA ' + p)\n"
        "con.executescript('''CREATE TABLE records (record_id INTEGER PRIMARY KEY,"
        " subject_id INTEGER NOT NULL, category INTEGER NOT NULL, points INTEGER NOT NULL,"
        " event_date TEXT NOT NULL, expires_date TEXT NOT NULL, status INTEGER NOT NULL);"
        " CREATE TABLE subjects (subject_id INTEGER PRIMARY KEY);''')\n"
        "for b in pq.ParquetFile('data/records.parquet').iter_batches(batch_size=100_000):\n"
        "    cols = [b.column(i) for i in range(7)]\n"
        "    cols[4], cols[5] = pc.cast(cols[4], 'string'), pc.cast(cols[5], 'string')\n"
        "    con.execute('BEGIN')\n"
        "    con.executemany('INSERT INTO records VALUES (?,?,?,?,?,?,?)',"
        " list(zip(*(c.to_pylist() for c in cols))))\n"
        "    con.execute('COMMIT')\n"
        "con.execute('BEGIN')\n"
        "con.executemany('INSERT INTO subjects VALUES (?)', ((i,) for i in range(N_SUBJECTS)))\n"
        "con.execute('COMMIT')\n"
        "con.execute('CREATE INDEX records_subject ON records(subject_id)')\n"
        "con.execute('ANALYZE')\n"
        "con.execute('PRAGMA wal_checkpoint(TRUNCATE)')\n"
        "con.close()\n"
    )
    subprocess.run([ref_python, "-c", loader], cwd=home, check=True)
    for name in ("records.parquet", "records.csv"):
        (home / "data" / name).unlink(missing_ok=True)
    (home / "data" / "register.ready").write_text("ok\n")
    return home


def start_reference(home: Path, port: int, workers: int) -> Server:
    """The reference minimal FastAPI endpoint, served by credo's own FastAPI and uvicorn."""
    logfile = OUT / "http-reference.log"
    with logfile.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "app_sqlite:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(workers),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            cwd=home,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    wait_ready(f"http://127.0.0.1:{port}/subject/42", proc, logfile)
    return Server("reference", proc, port, logfile)


# ----------------------------------------------------------------------------- wrk


@dataclass
class WrkRun:
    """One wrk run: its figures as wrk and bench/http.lua report them."""

    endpoint: str
    seconds: int
    load_before: str
    requests: int = 0
    rps: float = 0.0
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    ok: int = 0  # 2xx answers to the measured requests
    bad: int = 0  # other statuses
    socket_errors: int = 0
    drained: int = 0  # answers to the drain requests (not measured)
    statuses: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as `uptime` prints them."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _ms(value: str) -> float:
    number = float(re.match(r"[\d.]+", value).group(0))  # type: ignore[union-attr]
    if value.endswith("us"):
        return number / 1000
    if value.endswith("ms"):
        return number
    if value.endswith("m"):
        return number * 60_000
    return number * 1000  # seconds


def install_wrk() -> bool:
    """Install wrk from the system's packages when this runs as root with apt-get (as
    scripts/test installs Chromium); True once wrk is on the PATH."""
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log("installing wrk (apt-get install wrk)")
        quiet = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "wrk"]):
            subprocess.run(command, env=quiet, stdout=subprocess.DEVNULL, check=False)
    return shutil.which("wrk") is not None


def run_wrk(
    endpoint: str,
    port: int,
    seconds: int,
    env: dict[str, str],
    *,
    threads: int,
    connections: int,
    script: Path = LUA,
    path: str = "/",
    server: Server | None = None,
    dbname: str | None = None,
) -> WrkRun:
    """Run wrk with the Lua script; parse its latency, throughput and status counts.

    With `server` (and `dbname`), also the CPU the server's processes (and the database's
    backends) spent per answered request.
    """
    run = WrkRun(endpoint, seconds, load_average())
    pids = server.pids() if server else []
    app_before = cpu_seconds(pids)
    db_before = cpu_seconds(postgres_pids(dbname)) if dbname else {}
    drain = 3 if script == LUA else 0
    args = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds + drain}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}{path}",
    ]
    full_env = {**os.environ, **env, "BENCH_SECONDS": str(seconds)}
    proc = subprocess.run(args, env=full_env, capture_output=True, text=True, check=False)
    text = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise SystemExit(f"wrk failed ({proc.returncode}):\n{text}")
    for label, attr in (("50%", "p50_ms"), ("90%", "p90_ms"), ("99%", "p99_ms")):
        match = re.search(rf"^\s+{re.escape(label)}\s+(\S+)", text, re.M)
        if match:
            setattr(run, attr, _ms(match.group(1)))
    match = re.search(r"^\s+Latency\s+\S+\s+\S+\s+(\S+)", text, re.M)
    if match:
        run.max_ms = _ms(match.group(1))
    match = re.search(r"(\d+) requests in", text)
    run.requests = int(match.group(1)) if match else 0
    match = re.search(r"Requests/sec:\s+([\d.]+)", text)
    run.rps = float(match.group(1)) if match else 0.0
    match = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if match:
        run.socket_errors = sum(int(g) for g in match.groups())
    match = re.search(r"^BENCH (\{.*\})$", text, re.M)
    if match:
        counts = json.loads(match.group(1))
        run.statuses = {str(k): int(v) for k, v in counts["statuses"].items()}
        run.ok = sum(v for k, v in run.statuses.items() if k.startswith("2"))
        run.bad = sum(v for k, v in run.statuses.items() if not k.startswith("2"))
        run.drained = int(counts["drained"])
        measured = run.ok + run.bad
        run.rps = measured / seconds  # measured requests only, over the measured window
    else:  # the reference script counts nothing itself
        match = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
        run.bad = int(match.group(1)) if match else 0
        run.ok = run.requests - run.bad
    if server is not None:
        app_cpu = cpu_used(app_before, cpu_seconds(pids))
        db_cpu = cpu_used(db_before, cpu_seconds(postgres_pids(dbname))) if dbname else 0.0
        answered = max(1, run.ok + run.bad + run.drained)
        run.extra["server_cpu_ms_per_request"] = round(app_cpu * 1000 / answered, 3)
        if dbname:
            run.extra["postgres_cpu_ms_per_request"] = round(db_cpu * 1000 / answered, 3)
    run.extra["wrk_output"] = text
    return run


# ----------------------------------------------------------------------------- the run


@dataclass
class Report:
    """Everything one invocation measured."""

    shape: dict[str, int]
    runs: list[WrkRun] = field(default_factory=list)
    checks: dict[str, Any] = field(default_factory=dict)
    memory: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def lua_env(actors: Actors, shape: Shape, endpoint: str) -> dict[str, str]:
    """What bench/http.lua reads from its environment."""
    return {
        "BENCH_ENDPOINT": endpoint,
        "BENCH_SUBJECTS": str(shape.subjects),
        "BENCH_QUERY_KEY": actors.query_key,
        "BENCH_CHECK_KEY": actors.check_key,
        "BENCH_PURPOSE": PURPOSE,
        "BENCH_CHECK_PURPOSE": CHECK_PURPOSE,
        "BENCH_CHECK_SIZE": str(CHECK_SIZE),
        "BENCH_COOKIE": actors.reviewer_cookie,
        "BENCH_SURNAMES": ",".join(s.lower() for s in synthetic.SURNAMES),
        "BENCH_SEED": str(random.randrange(1, 2**31)),
    }


def measure_credo(
    report: Report,
    engine: HttpPostgres,
    actors: Actors,
    shape: Shape,
    args: argparse.Namespace,
) -> None:
    """Load each endpoint of a running `credo serve` and check the inquiry invariant."""
    server = start_credo(engine, args.port, args.workers)
    try:
        endpoints = [e.strip() for e in args.endpoints.split(",") if e.strip()]
        warm = lua_env(actors, shape, "standing")
        log(f"credo: warm-up (standing, {args.warmup} s)")
        run_wrk(
            "warm-up",
            args.port,
            args.warmup,
            warm,
            threads=args.threads,
            connections=args.connections,
        )
        for endpoint in endpoints:
            seconds = args.duration if endpoint == "standing" else args.other_duration
            env = lua_env(actors, shape, endpoint)
            inquiries_before = pg_count(engine.url, "inquiries")
            head_before = audit_head(engine.url)
            log(f"credo: {endpoint} for {seconds} s (load average {load_average()})")
            run = run_wrk(
                endpoint,
                args.port,
                seconds,
                env,
                threads=args.threads,
                connections=args.connections,
                server=server,
                dbname=engine.db,
            )
            report.runs.append(run)
            stopped = cancel_leftovers(engine)
            if stopped:
                log(f"credo: {endpoint}: cancelled {stopped} statements still running after wrk")
                run.extra["statements_cancelled_after_run"] = stopped
            logged = settled_count(engine.url, "inquiries") - inquiries_before
            per_answer = CHECK_SIZE if endpoint == "checks" else 1
            expected = run.ok * per_answer if endpoint in ("standing", "checks") else 0
            checked, broken = audit_tail_ok(engine.url, max(1, head_before))
            run.extra.update(
                inquiries_logged=logged,
                inquiries_expected=expected,
                audit_entries_checked=checked,
                audit_broken_links=broken,
            )
            log(
                f"credo: {endpoint}: {run.rps:,.0f} req/s, p50 {run.p50_ms:.2f} ms, "
                f"p99 {run.p99_ms:.2f} ms, {run.ok:,} ok, {run.bad} bad, "
                f"{run.socket_errors} socket errors; CPU per request: server "
                f"{run.extra.get('server_cpu_ms_per_request')} ms, PostgreSQL "
                f"{run.extra.get('postgres_cpu_ms_per_request')} ms; inquiries +{logged:,} "
                f"(expected {expected:,}); audit {checked:,} entries, {broken} broken"
            )
            if run.bad or run.socket_errors:
                report.problems.append(
                    f"{endpoint}: {run.bad} non-2xx answers {run.statuses}, "
                    f"{run.socket_errors} socket errors"
                )
            if logged != expected:
                report.problems.append(
                    f"{endpoint}: {logged} inquiries logged for {expected} answered lookups"
                )
            if broken:
                report.problems.append(f"{endpoint}: {broken} audit entries do not chain")
        report.memory["credo"] = server.peak_rss_mb()
    finally:
        server.stop()


def measure_reference(report: Report, args: argparse.Namespace) -> None:
    """The reference minimal endpoint, same wrk settings, same invocation."""
    home = prepare_reference(args.ref_python)
    server = start_reference(home, args.ref_port, args.workers)
    try:
        script = home / "wrk_random.lua"
        log("reference: warm-up (3 s)")
        run_wrk(
            "warm-up",
            args.ref_port,
            3,
            {},
            threads=args.threads,
            connections=args.connections,
            script=script,
        )
        log(f"reference: {args.other_duration} s (load average {load_average()})")
        run = run_wrk(
            "reference",
            args.ref_port,
            args.other_duration,
            {},
            threads=args.threads,
            connections=args.connections,
            script=script,
            server=server,
        )
        report.runs.append(run)
        report.memory["reference"] = server.peak_rss_mb()
        log(f"reference: {run.rps:,.0f} req/s, p50 {run.p50_ms:.2f} ms, p99 {run.p99_ms:.2f} ms")
    finally:
        server.stop()


def table(report: Report) -> str:
    """The figures as a text table, one row per endpoint."""
    ref = next((r for r in report.runs if r.endpoint == "reference"), None)
    head = (
        f"{'endpoint':<12}{'s':>5}{'req/s':>9}{'vs ref':>8}{'p50 ms':>8}{'p99 ms':>8}"
        f"{'max ms':>8}{'2xx':>10}{'errors':>8}  load avg"
    )
    lines = [head, "-" * len(head)]
    for run in report.runs:
        ratio = f"{run.rps / ref.rps:.2f}" if ref and ref.rps else "-"
        lines.append(
            f"{run.endpoint:<12}{run.seconds:>5}{run.rps:>9,.0f}{ratio:>8}{run.p50_ms:>8.2f}"
            f"{run.p99_ms:>8.2f}{run.max_ms:>8.1f}{run.ok:>10,}{run.bad + run.socket_errors:>8}"
            f"  {run.load_before}"
        )
    return "\n".join(lines)


def write_json(report: Report, args: argparse.Namespace) -> Path:
    """bench/out/results-http.json."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "results-http.json"
    payload = {
        "shape": report.shape,
        "settings": {
            "workers": args.workers,
            "threads": args.threads,
            "connections": args.connections,
            "duration": args.duration,
            "other_duration": args.other_duration,
        },
        "runs": [
            {k: v for k, v in run.__dict__.items() if k != "extra"}
            | {k: v for k, v in run.extra.items() if k != "wrk_output"}
            for run in report.runs
        ],
        "memory_peak_rss_mb": report.memory,
        "checks": report.checks,
        "problems": report.problems,
        "at": datetime.now().isoformat(timespec="seconds"),
    }
    path.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    return path


def append_results(report: Report, args: argparse.Namespace) -> None:
    """Append this run's table to bench/RESULTS.md."""
    ref = next((r for r in report.runs if r.endpoint == "reference"), None)
    lines = [
        "",
        f"### `bench_http.py` run of {datetime.now():%Y-%m-%d %H:%M} UTC",
        "",
        f"{report.shape['subjects']:,} subjects, {report.shape['records']:,} records on "
        f"PostgreSQL; `credo serve --workers {args.workers}`; wrk -t{args.threads} "
        f"-c{args.connections} on 127.0.0.1; the reference endpoint in the same invocation.",
        "",
        "| endpoint | s | req/s | vs reference | p50 ms | p99 ms | max ms | 2xx | errors "
        "| inquiries logged / expected | CPU ms per request: server / PostgreSQL "
        "| load avg before |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for run in report.runs:
        ratio = f"{run.rps / ref.rps:.2f}" if ref and ref.rps else "-"
        inquiries = (
            f"{run.extra['inquiries_logged']:,} / {run.extra['inquiries_expected']:,}"
            if "inquiries_logged" in run.extra and run.endpoint in ("standing", "checks")
            else "-"
        )
        lines.append(
            f"| {run.endpoint} | {run.seconds} | {run.rps:,.0f} | {ratio} | {run.p50_ms:.2f} "
            f"| {run.p99_ms:.2f} | {run.max_ms:.1f} | {run.ok:,} | "
            f"{run.bad + run.socket_errors} | {inquiries} | "
            f"{run.extra.get('server_cpu_ms_per_request', '-')} / "
            f"{run.extra.get('postgres_cpu_ms_per_request', '-')} | {run.load_before} |"
        )
    memory = "; ".join(
        f"{name}: " + ", ".join(f"{k} {v:.0f} MB" for k, v in peaks.items())
        for name, peaks in report.memory.items()
    )
    lines += ["", f"Peak RSS: {memory}.", ""]
    if report.problems:
        lines += [f"Problems: {'; '.join(report.problems)}", ""]
    with (HERE / "RESULTS.md").open("a", encoding="utf-8") as out:
        out.write("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--subjects", type=int, default=1_000_000)
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument(
        "--pg-url",
        default="postgresql://postgres@127.0.0.1:5432/credo_bench_http",
        help="database to create and drop (it must not hold anything you need)",
    )
    parser.add_argument("--keep-data", action="store_true", help="keep (and reuse) the register")
    parser.add_argument("--build-only", action="store_true", help="build the register and stop")
    parser.add_argument(
        "--as-is",
        action="store_true",
        help="measure the database as it is (say, an import stopped part way); figures name "
        "the subjects and records it holds",
    )
    parser.add_argument(
        "--explain",
        action="store_true",
        help="print EXPLAIN (ANALYZE, BUFFERS) of the endpoints' statements and stop",
    )
    parser.add_argument("--duration", type=int, default=60, help="seconds of the standing run")
    parser.add_argument(
        "--warmup",
        type=int,
        default=15,
        help="seconds of standing lookups before measuring, so that PostgreSQL's buffers and "
        "the OS cache hold the records' pages",
    )
    parser.add_argument(
        "--other-duration", type=int, default=30, help="seconds of each other endpoint's run"
    )
    parser.add_argument(
        "--endpoints", default="standing,checks,search,cases", help="comma-separated"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--port", type=int, default=8741)
    parser.add_argument("--ref-port", type=int, default=8742)
    parser.add_argument("--no-reference", action="store_true", help="skip the reference app")
    parser.add_argument(
        "--ref-python",
        default=str(br.DATA / "refvenv" / "bin" / "python"),
        help="a Python with numpy and pyarrow, to generate the reference data",
    )
    parser.add_argument(
        "--append-results", action="store_true", help="append the figures to bench/RESULTS.md"
    )
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None and not args.build_only and not install_wrk():
        parser.error("wrk is not installed (apt-get install wrk)")
    if not (args.no_reference or args.build_only or args.explain or reference_ready()):
        br.reference_dir()  # refused before anything is measured, not after

    bench_text = br.POLICY.read_text(encoding="utf-8")
    policy = load_policy(bench_text, str(br.POLICY))
    load_policy(policy_text(), "bench_http policy")  # refuse early if the purposes are wrong
    shape = Shape(subjects=args.subjects, records=args.records, today=TODAY, seed=args.seed)
    subjects_csv, records_csv = br.generate(policy, shape, bench_text)
    engine = HttpPostgres(args.pg_url)
    report = Report({"subjects": shape.subjects, "records": shape.records, "seed": shape.seed})
    try:
        if args.as_is:
            log(f"{engine.db}: measuring the register as it is (no build, no import)")
        else:
            report.checks["import_s"] = round(build(engine, shape, subjects_csv, records_csv), 1)
        report.shape["subjects"] = pg_count(engine.url, "subjects")
        report.shape["records"] = pg_count(engine.url, "records")
        if args.build_only:
            return 0
        if args.explain:
            print(explain(engine, shape))
            return 0
        actors = prepare_actors(engine, shape)
        report.checks["open_cases"] = actors.open_cases
        measure_credo(report, engine, actors, shape, args)
        if not args.no_reference:
            measure_reference(report, args)
    finally:
        if not args.keep_data and not args.as_is:
            engine.remove()
            for path in (subjects_csv, records_csv):
                path.unlink(missing_ok=True)
    path = write_json(report, args)
    print()
    print(
        f"credo HTTP benchmark: {report.shape['subjects']:,} subjects, "
        f"{report.shape['records']:,} records, "
        f"credo serve --workers {args.workers}, wrk -t{args.threads} -c{args.connections}"
    )
    print(table(report))
    for name, peaks in report.memory.items():
        print(f"peak RSS {name}: " + ", ".join(f"{k} {v:.0f} MB" for k, v in peaks.items()))
    for problem in report.problems:
        print(f"PROBLEM: {problem}")
    log(f"figures written to {path.relative_to(ROOT)}")
    if args.append_results:
        append_results(report, args)
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
