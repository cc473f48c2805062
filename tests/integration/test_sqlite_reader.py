"""The SQLite register read as Arrow through ADBC, in a process of its own (sqlite_reader)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from credo.bootstrap import build_register
from credo.clock import FixedDateClock
from credo.services.register import Register
from credo.settings import Settings
from credo.store import sqlite_reader
from tests.conftest import TODAY
from tests.factories import seed_register


@pytest.fixture
def sqlite_register(tmp_path: Path) -> Register:
    settings = Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path}/credo.sqlite3")  # type: ignore[call-arg]
    reg = build_register(settings, clock=FixedDateClock(TODAY))
    seed_register(reg, subjects=5)
    return reg


def _path(register: Register) -> str:
    return str(register.engine.url.database)


def test_statements_answer_as_arrow_and_errors_name_the_driver_message(
    sqlite_register: Register,
) -> None:
    with sqlite_reader.connect(_path(sqlite_register)) as conn, conn.cursor() as cur:
        cur.execute("SELECT id FROM subjects ORDER BY id")
        assert cur.fetch_arrow_table().column("id").to_pylist() == [
            f"s-{n:03d}" for n in range(1, 6)
        ]
        cur.execute("SELECT COUNT(*) FROM subjects")
        assert cur.fetchone() == (5,)
        cur.execute("SELECT id FROM subjects WHERE id = 'nobody'")
        assert cur.fetchone() is None
        cur.execute("SELECT * FROM no_such_table")
        with pytest.raises(sqlite_reader.ReaderError, match="no such table: no_such_table"):
            cur.fetchone()
        conn.rollback()
        cur.execute("SELECT COUNT(*) FROM subjects")  # the connection goes on after an error
        assert cur.fetchone() == (5,)
    with (
        sqlite_reader.connect(_path(sqlite_register)) as conn,
        conn.cursor() as cur,
        pytest.raises(sqlite_reader.ReaderError, match=r"readonly"),
    ):
        cur.execute("DELETE FROM subjects")
        cur.fetchone()
    with sqlite_register.read() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM subjects")).scalar_one() == 5


def test_reading_leaves_this_process_its_locks(sqlite_register: Register) -> None:
    """A read through the reader leaves this process's own connections their locks: a
    process that then opens the register while this one writes reads it at once.

    Were the driver (a second SQLite library) to run here, closing its descriptors would
    drop this process's locks, the other process would find the shared index unused, reset
    it, and wait for this process's write lock to recover it until SQLite gave up with
    "locking protocol"."""
    reg = sqlite_register
    check = (
        "import sqlite3, sys; "
        "c = sqlite3.connect(f'file:{sys.argv[1]}?mode=ro', uri=True); "
        "print(c.execute('SELECT COUNT(*) FROM subjects').fetchone()[0])"
    )
    with reg.read() as conn:  # this process holds the shared index from here on
        assert conn.execute(text("SELECT COUNT(*) FROM subjects")).scalar_one() == 5
    with sqlite_reader.connect(_path(reg)) as reader, reader.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM subjects")
        assert cur.fetchone() == (5,)
    with reg.write() as conn:
        conn.execute(text("UPDATE subjects SET organisation = 'Moved' WHERE id = 's-001'"))
        other = subprocess.run(
            [sys.executable, "-c", check, _path(reg)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert (other.returncode, other.stdout.strip()) == (0, "5"), other.stderr
