"""Fixture strategy for the fault tests.

- Every test here injects a real fault into real processes: `credo import` killed with
  SIGKILL, PostgreSQL restarted under `credo serve`, no SMTP server, concurrent writers.
  Nothing is mocked; the register is the `register`/`database_url` of tests/conftest.py
  (SQLite file and a fresh PostgreSQL schema).
- `Credo` runs the installed `credo` console script as a child process with its own
  CREDO_HOME, CREDO_DATABASE_URL and a pinned CREDO_TODAY, in its own process group so that
  a kill reaches its worker processes too.
- `records_file` writes a seeded CSV of tens of thousands of rows with known bad rows,
  retries and conflicts; `expected_rows` says exactly which rows must end up stored.
- `restart_postgres` restarts the shared server and always leaves it running.
- Each test's time is bounded (timeouts on every wait); the folder runs in about a minute.
"""

from __future__ import annotations

import contextlib
import csv
import os
import random
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from credo import synthetic
from credo.bootstrap import build_register
from credo.clock import FixedDateClock
from credo.demo import example_policy_text
from credo.domain.policy_load import load_policy
from credo.services.filing import subject_standing
from credo.services.register import Register
from credo.settings import Settings
from credo.store.tables import standings
from tests.conftest import PG_URL, TODAY, require_postgres

ROOT = Path(__file__).resolve().parents[2]
CREDO_BIN = ROOT / ".venv" / "bin" / "credo"
AUTHORITY = "city-discipline"
RECORD_COLUMNS = [
    "reference",
    "subject_id",
    "category",
    "decided_on",
    "occurred_on",
    "legal_basis",
    "summary",
    "amount",
    "evidence_uri",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this folder carries the `faults` marker."""
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.faults)


# ----------------------------------------------------------------------------- processes


@dataclass
class Credo:
    """The `credo` command as a real child process on one register."""

    home: Path
    database_url: str
    today: date = TODAY
    extra_env: dict[str, str] | None = None

    def env(self) -> dict[str, str]:
        """The child's environment: ours without CREDO_*, plus this register's settings."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("CREDO_")}
        env.update(
            {
                "CREDO_HOME": str(self.home),
                "CREDO_DATABASE_URL": self.database_url,
                "CREDO_TODAY": self.today.isoformat(),
                **(self.extra_env or {}),
            }
        )
        return env

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run to completion; stdout and stderr captured as text."""
        return subprocess.run(
            [str(CREDO_BIN), *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start(self, *args: str, log: Path | None = None) -> subprocess.Popen[bytes]:
        """Start in a new process group (see `kill_group`); output to `log` or discarded."""
        out: Any = log.open("wb") if log is not None else subprocess.DEVNULL
        try:
            return subprocess.Popen(
                [str(CREDO_BIN), *args],
                env=self.env(),
                stdout=out,
                stderr=subprocess.STDOUT if log is not None else subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            if log is not None:
                out.close()


def kill_group(process: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    """Send `sig` to the process and everything it started (its own process group)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=30)


def stop(process: subprocess.Popen[bytes]) -> None:
    """End a child politely (SIGTERM), then for good (SIGKILL)."""
    if process.poll() is None:
        kill_group(process, signal.SIGTERM)
    if process.poll() is None:
        kill_group(process, signal.SIGKILL)


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def open_register(database_url: str, home: Path) -> Iterator[Register]:
    """A migrated register on this database with the clock on TODAY, disposed afterwards."""
    register = build_register(
        Settings(home=home, database_url=database_url),
        clock=FixedDateClock(TODAY),
    )
    try:
        yield register
    finally:
        register.engine.dispose()


# ----------------------------------------------------------------------------- PostgreSQL


def _cluster_version() -> str:
    versions = sorted(os.listdir("/etc/postgresql"))
    return versions[-1]


def postgres_ready(timeout: float = 0.5) -> bool:
    """Whether the shared server accepts a query right now."""
    engine = create_engine(PG_URL, connect_args={"connect_timeout": 2}, poolclass=None)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:  # refused, shutting down or starting up: not ready
        return False
    finally:
        engine.dispose()


def wait_for_postgres(deadline: float = 60) -> None:
    """Block until PostgreSQL answers (or fail after `deadline` seconds)."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if postgres_ready():
            return
        time.sleep(0.2)
    pytest.fail("PostgreSQL did not come back within a minute")


def can_restart_postgres() -> str | None:
    """None when this machine's cluster can be restarted here, else why not."""
    if not Path("/etc/postgresql").is_dir():
        return "no local PostgreSQL cluster (/etc/postgresql) to restart"
    if os.geteuid() != 0:
        return "restarting PostgreSQL needs root"
    return None


@pytest.fixture
def own_pg_database() -> Iterator[str]:
    """A URL to a fresh PostgreSQL database of its own (dropped afterwards), for a test that
    holds credo's advisory locks: those are per database, and other suites share `test`."""
    require_postgres()
    name = f"credo_faults_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    base, _, query = PG_URL.partition("?")
    try:
        yield base.rsplit("/", 1)[0] + f"/{name}" + (f"?{query}" if query else "")
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


@pytest.fixture
def restartable_pg_url() -> Iterator[str]:
    """Like `pg_url` (a fresh schema, dropped afterwards), for a test that restarts the
    server: the schema is dropped through a pre-pinged connection, since the restart
    closed every connection opened before it."""
    reason = can_restart_postgres()
    if reason:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{reason} (CI=true: the restart test must run)", pytrace=False)
        pytest.skip(reason)
    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL, pool_pre_ping=True)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        wait_for_postgres()
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@contextlib.contextmanager
def postgres_stopped() -> Iterator[None]:
    """Stop the shared PostgreSQL for the body of the block; it is started again afterwards
    whatever happens, and the block waits until it answers."""
    version = _cluster_version()
    cmd = ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main"]
    subprocess.run([*cmd, "stop", "-m", "fast"], check=True, timeout=60, capture_output=True)
    try:
        yield
    finally:
        subprocess.run([*cmd, "start"], check=False, timeout=60, capture_output=True)
        wait_for_postgres()


# ----------------------------------------------------------------------------- data


def policy_text() -> str:
    """The example city policy (city-discipline files four discipline categories)."""
    return example_policy_text()


def subject_rows(count: int) -> list[dict[str, str]]:
    """`count` synthetic public servants, s-0000001 onwards."""
    shape = synthetic.Shape(subjects=count, today=TODAY)
    return list(synthetic.subjects(shape))


@dataclass
class RecordsFile:
    """A generated import file and the rows it must store."""

    path: Path
    lines: int
    good: dict[str, tuple[str, ...]]  # reference -> stored fields (see `stored_rows`)
    rejected: int
    retries: int


def records_file(path: Path, *, rows: int, subjects: int, seed: int = 6) -> RecordsFile:
    """A CSV of `rows` records for AUTHORITY with, mixed in at seeded places, rows that must
    be refused (unknown subject, future date, unknown category, a reused reference with other
    content) and exact retries of earlier rows (stored once)."""
    policy = load_policy(policy_text())
    categories = [c.id for c in policy.categories if policy.may_file(AUTHORITY, c.id)]
    rng = random.Random(seed)
    good: dict[str, tuple[str, ...]] = {}
    written: list[dict[str, str]] = []
    rejected = retries = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=RECORD_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for n in range(1, rows + 1):
            decided = TODAY - timedelta(days=rng.randrange(0, 4 * 365))
            row = {
                "reference": f"DISC-{seed}-{n:07d}",
                "subject_id": synthetic.subject_id(rng.randrange(subjects) + 1),
                "category": rng.choice(categories),
                "decided_on": decided.isoformat(),
                "occurred_on": (decided - timedelta(days=rng.randrange(0, 60))).isoformat(),
                "legal_basis": "Civil Servant Law art. 62",
                "summary": f"Disciplinary decision {n} of the city discipline office",
                "amount": "",
                "evidence_uri": f"https://records.example.gov/discipline/{n}",
            }
            roll = rng.random()
            if roll < 0.004:
                row["subject_id"] = "s-9999999"  # not registered
                rejected += 1
            elif roll < 0.008:
                row["decided_on"] = (TODAY + timedelta(days=3)).isoformat()  # in the future
                row["occurred_on"] = ""
                rejected += 1
            elif roll < 0.012:
                row["category"] = "discipline.no_such_thing"
                rejected += 1
            elif roll < 0.016 and written:
                row = dict(rng.choice(written))  # a retry of an earlier row: stored once
                retries += 1
            elif roll < 0.020 and written:
                earlier = rng.choice(written)
                row = {**earlier, "summary": earlier["summary"] + " (amended)"}  # a conflict
                rejected += 1
            else:
                good[row["reference"]] = stored_fields(row)
                written.append(row)
            writer.writerow(row)
    return RecordsFile(path, rows, good, rejected, retries)


def stored_fields(row: dict[str, Any]) -> tuple[str, ...]:
    """The fields of a record compared between the file and the store."""
    return tuple(
        "" if row.get(k) is None else str(row[k])
        for k in ("reference", "subject_id", "category", "decided_on", "occurred_on", "summary")
    )


def stored_rows(register: Register) -> list[tuple[str, ...]]:
    """Every stored record of AUTHORITY, as `stored_fields` (duplicates kept)."""
    with register.read() as conn:
        result = conn.execute(
            text(
                "SELECT reference, subject_id, category, decided_on, occurred_on, summary "
                "FROM records WHERE authority_id = :a"
            ),
            {"a": AUTHORITY},
        )
        return [stored_fields(dict(r._mapping)) for r in result]


def standings_match_a_fresh_rescore(register: Register, as_of: date = TODAY) -> list[str]:
    """Every subject's stored standing beside the pure scorer's; returns the differences."""
    problems: list[str] = []
    with register.read() as conn:
        _, policy = register.active_policy(conn)
        stored = {row.subject_id: row for row in conn.execute(standings.select())}
        subject_ids = [r[0] for r in conn.execute(text("SELECT id FROM subjects ORDER BY id"))]
        for sid in subject_ids:
            fresh = subject_standing(conn, policy, sid, as_of)
            row = stored.get(sid)
            if row is None:
                problems.append(f"{sid}: no stored standing")
                continue
            got = (row.score, row.grade, row.lists, row.measures)
            want = (fresh.score, fresh.grade, ",".join(fresh.lists), ",".join(fresh.measures))
            if got != want:
                problems.append(f"{sid}: stored {got}, fresh rescore {want}")
    return problems


# ----------------------------------------------------------------------------- a served API


@dataclass
class Server:
    """`credo serve` as a real uvicorn process on 127.0.0.1."""

    process: subprocess.Popen[bytes]
    base_url: str
    log: Path

    def output(self) -> str:
        """What the server logged so far."""
        return self.log.read_text(encoding="utf-8", errors="replace")


@contextlib.contextmanager
def serving(credo: Credo, log: Path, ready_within: float = 30) -> Iterator[Server]:
    """Run `credo serve` until the block ends; it must answer /healthz first."""
    port = free_port()
    process = credo.start("serve", "--port", str(port), log=log)
    server = Server(process, f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + ready_within
        while True:
            if process.poll() is not None:
                pytest.fail(f"credo serve exited with {process.returncode}:\n{server.output()}")
            try:
                if httpx.get(f"{server.base_url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"credo serve is silent after {ready_within}s:\n{server.output()}")
            time.sleep(0.1)
        yield server
    finally:
        stop(process)
