"""Fixture strategy.

- Unit tests (tests/unit) build policies and records in memory: no database, no clock.
- Integration and API tests get a real store through `register`, parametrised over SQLite
  (a file under tmp_path) and PostgreSQL (a fresh schema per test in the database named by
  CREDO_TEST_POSTGRES_URL, created from the DDL of a schema the migrations built once per
  session). PostgreSQL is never mocked: without a server the PostgreSQL cases skip with
  one line saying why, and under CI=true they fail loudly instead.
- CREDO_TEST_PARTITIONS=N runs every PostgreSQL test on a register hash-partitioned by
  subject into N partitions (`credo partition`).
- The clock is a FixedDateClock on TODAY unless a test moves it.
- The example policy and small factories live in tests/factories.py.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from datetime import date

import pytest
from sqlalchemy import create_engine, make_url, text

from credo.bootstrap import build_register
from credo.clock import FixedDateClock
from credo.services.register import Register
from credo.settings import Settings

# New password hashes in tests use argon2id's lightest cost: the same code and the same
# checks, at a millisecond a hash instead of over 100 (tests/unit/services/test_passwords.py
# checks the production profile). Subprocesses inherit it.
os.environ.setdefault("CREDO_PASSWORD_TIME_COST", "1")
os.environ.setdefault("CREDO_PASSWORD_MEMORY_KIB", "64")
os.environ.setdefault("CREDO_PASSWORD_PARALLELISM", "1")

TODAY = date(2026, 3, 15)
PG_URL = os.environ.get(
    "CREDO_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
_pg_state: dict[str, str | None] = {}
# CREDO_TEST_PARTITIONS=N runs every PostgreSQL test on a register hash-partitioned by subject
# into N partitions (docs/scale.md); tests/integration/test_partitioned.py always does.
PARTITIONS = int(os.environ.get("CREDO_TEST_PARTITIONS", "0"))


def _postgres_problem() -> str | None:
    """None when PostgreSQL answers, else a one-line reason."""
    if "problem" not in _pg_state:
        try:
            engine = create_engine(PG_URL, connect_args={"connect_timeout": 3})
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            engine.dispose()
            _pg_state["problem"] = None
        except Exception as exc:  # any failure to connect means "no server here"
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            _pg_state["problem"] = f"PostgreSQL unreachable at {PG_URL}: {first}"
    return _pg_state["problem"]


def require_postgres() -> None:
    """Skip (or, under CI, fail) when PostgreSQL is not reachable."""
    problem = _postgres_problem()
    if problem is None:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{problem} (CI=true: the PostgreSQL tests must run)", pytrace=False)
    pytest.skip(problem)


def _schema_url(schema: str) -> str:
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}options=-csearch_path%3D{schema}"


@pytest.fixture(scope="session")
def pg_schema_ddl() -> Iterator[str | None]:
    """The DDL of a schema the migrations built, once a session, from pg_dump.

    Each test's schema is created from it: the migrations' exact result in 60 ms instead of
    running them again (300 ms) for each of hundreds of PostgreSQL tests. None without
    pg_dump: each schema is then migrated. tests/integration/test_migrations.py compares
    freshly migrated schemas with the tables, so the migrations themselves stay tested.
    """
    require_postgres()
    template = f"t_template_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {template}"))
    try:
        if PARTITIONS:  # its audit entry is data, which the dump leaves out
            _partitioned(_schema_url(template), PARTITIONS)
        else:
            build_register(Settings(database_url=_schema_url(template))).engine.dispose()  # type: ignore[call-arg]
        ddl = _dump_schema(template)
        if ddl is not None:
            version = "SELECT version_num FROM {}.alembic_version"
            with admin.connect() as conn:
                head = conn.execute(text(version.format(template))).scalar_one()
            ddl += f"\nINSERT INTO {template}.alembic_version VALUES ('{head}');\n"
            ddl = ddl.replace(template, "{schema}")
        yield ddl
    finally:
        admin.dispose()  # a fault test may have restarted the server since
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {template} CASCADE"))
        admin.dispose()


def _dump_schema(schema: str) -> str | None:
    """`pg_dump --schema-only` of one schema, without psql's meta-commands."""
    url = make_url(PG_URL)
    command = ["pg_dump", "--schema-only", "--no-owner", "--no-privileges", "-n", schema]
    command += ["-h", url.host or "127.0.0.1", "-p", str(url.port or 5432)]
    command += ["-U", url.username or "postgres", "-d", url.database or "postgres"]
    env = {**os.environ, **({"PGPASSWORD": url.password} if url.password else {})}
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return "\n".join(line for line in done.stdout.splitlines() if not line.startswith("\\"))


@pytest.fixture
def pg_url(request: pytest.FixtureRequest, pg_schema_ddl: str | None) -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema (dropped afterwards): migrated
    to the newest revision, or empty for a test marked `empty_schema`."""
    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    empty = request.node.get_closest_marker("empty_schema") is not None
    with admin.begin() as conn:
        if empty or pg_schema_ddl is None:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        else:
            conn.exec_driver_sql(pg_schema_ddl.replace("{schema}", schema))
    url = _schema_url(schema)
    if PARTITIONS and not empty and pg_schema_ddl is None:
        _partitioned(url, PARTITIONS)
    yield url
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


def _partitioned(url: str, partitions: int) -> None:
    """Migrate the schema behind `url` and hash-partition it by subject."""
    from credo.services.partitioning import partition

    reg = build_register(Settings(database_url=url), clock=FixedDateClock(TODAY))  # type: ignore[call-arg]
    partition(reg, partitions, actor="test")
    reg.engine.dispose()


@pytest.fixture
def partitioned_register(
    pg_url: str, clock: FixedDateClock, tmp_path: object
) -> Iterator[Register]:
    """A migrated, empty PostgreSQL register hash-partitioned by subject into 4."""
    if not PARTITIONS:
        _partitioned(pg_url, 4)
    reg = build_register(Settings(home=tmp_path, database_url=pg_url), clock=clock)  # type: ignore[arg-type]
    yield reg
    reg.engine.dispose()


@pytest.fixture
def pg_register(pg_url: str, clock: FixedDateClock, tmp_path: object) -> Iterator[Register]:
    """A migrated, empty register on PostgreSQL only (for what only PostgreSQL does: the API's
    event-loop hot path, the planner's statistics)."""
    reg = build_register(Settings(home=tmp_path, database_url=pg_url), clock=clock)  # type: ignore[arg-type]
    yield reg
    reg.engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    """A fresh database of each kind: an empty SQLite file, or a PostgreSQL schema at the
    newest revision (empty for a test marked `empty_schema`)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/credo.sqlite3"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def clock() -> FixedDateClock:
    """The register's clock, pinned to TODAY; tests may move `clock.day`."""
    return FixedDateClock(TODAY)


@pytest.fixture
def register(database_url: str, clock: FixedDateClock, tmp_path: object) -> Iterator[Register]:
    """A migrated, empty register on each database kind."""
    settings = Settings(home=tmp_path, database_url=database_url)  # type: ignore[arg-type]
    reg = build_register(settings, clock=clock)
    yield reg
    reg.engine.dispose()
