"""Fixture strategy.

- Unit tests (tests/unit) build policies and records in memory: no database, no clock.
- Integration and API tests get a real store through `register`, parametrised over SQLite
  (a file under tmp_path) and PostgreSQL (a fresh schema per test in the database named by
  CREDO_TEST_POSTGRES_URL). PostgreSQL is never mocked: without a server the PostgreSQL
  cases skip with one line saying why, and under CI=true they fail loudly instead.
- The clock is a FixedDateClock on TODAY unless a test moves it.
- The example policy and small factories live in tests/factories.py.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import date

import pytest
from sqlalchemy import create_engine, text

from credo.bootstrap import build_register
from credo.clock import FixedDateClock
from credo.services.register import Register
from credo.settings import Settings

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


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh, empty schema (dropped afterwards)."""
    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in PG_URL else "?"
    url = f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    if PARTITIONS:
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


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    """A fresh, empty database of each kind."""
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
