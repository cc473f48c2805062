"""`credo backup` / `credo restore`: an online copy of an embedded register that verifies,
restores only what verifies, and never overwrites by accident."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from credo.bootstrap import build_register
from credo.cli import app
from credo.clock import FixedDateClock
from credo.domain.errors import ConflictError, ValidationError
from credo.services.audit_verify import verify_audit
from credo.services.backup import backup_register, restore_register
from credo.services.register import Register
from credo.services.standing import query_standing
from credo.settings import Settings
from credo.store.tables import records, standings
from tests.factories import file_rows, record, seed_register


def sqlite_register(home: Path, clock: FixedDateClock) -> Register:
    return build_register(Settings(home=home, database_url=None), clock=clock)


@pytest.fixture
def filled(tmp_path: Path, clock: FixedDateClock) -> Iterator[Register]:
    register = sqlite_register(tmp_path / "live", clock)
    seed_register(register, subjects=20)
    file_rows(
        register,
        "city-court",
        [
            record(f"R-{n}", f"s-{n % 20 + 1:03d}", "court.order_defiance", "2026-01-10")
            for n in range(40)
        ],
    )
    query_standing(
        register, authority_id="city-personnel", subject_id="s-001", purpose_id="promotion-review"
    )
    yield register
    register.engine.dispose()


def _state(register: Register) -> tuple[int, list[tuple[str, int]]]:
    with register.read() as conn:
        count = conn.execute(select(func.count()).select_from(records)).scalar_one()
        scores = conn.execute(
            select(standings.c.subject_id, standings.c.score).order_by(standings.c.subject_id)
        ).all()
    return int(count), [(str(s), int(v)) for s, v in scores]


def test_a_backup_taken_while_filing_restores_to_a_register_that_verifies(
    filled: Register, tmp_path: Path, clock: FixedDateClock
) -> None:
    # Filings go on while the copy is taken: the copy is one consistent moment.
    done = threading.Event()

    def keep_filing() -> None:
        n = 0
        while not done.is_set() and n < 200:
            file_rows(filled, "city-tax", [record(f"T-{n}", "s-002", "tax.arrears", "2026-02-01")])
            n += 1

    writer = threading.Thread(target=keep_filing)
    writer.start()
    try:
        copied = backup_register(filled, tmp_path / "register.backup")
    finally:
        done.set()
        writer.join()
    assert copied.bytes > 0 and copied.audit_head >= 4

    fresh = sqlite_register(tmp_path / "restored", clock)
    try:
        verification = restore_register(fresh, copied.path)
        assert verification.ok, verification.problems
        assert verify_audit(fresh).ok
        count, scores = _state(fresh)
        assert count >= 40 and len(scores) == 20
        # the restored register is the copied moment: its own records and standings agree
        with fresh.read() as conn:
            head = conn.execute(select(func.max(records.c.id))).scalar_one()
        assert head is not None
    finally:
        fresh.engine.dispose()


def test_restore_gives_back_exactly_what_was_backed_up(
    filled: Register, tmp_path: Path, clock: FixedDateClock
) -> None:
    before = _state(filled)
    copied = backup_register(filled, tmp_path / "b.sqlite3")
    file_rows(filled, "city-tax", [record("LATER", "s-003", "tax.arrears", "2026-02-01")])
    assert _state(filled) != before

    with pytest.raises(ConflictError, match="--replace"):
        restore_register(filled, copied.path)
    assert restore_register(filled, copied.path, replace=True).ok
    assert _state(filled) == before
    assert verify_audit(filled).ok


def test_a_backup_never_overwrites(filled: Register, tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.write_text("something else", encoding="utf-8")
    with pytest.raises(ConflictError, match="already exists"):
        backup_register(filled, target)
    assert target.read_text(encoding="utf-8") == "something else"


def test_a_tampered_backup_is_not_restored(
    filled: Register, tmp_path: Path, clock: FixedDateClock
) -> None:
    copied = backup_register(filled, tmp_path / "b.sqlite3")
    with sqlite3.connect(copied.path) as conn:
        conn.execute("UPDATE records SET summary = 'nothing happened' WHERE reference = 'R-1'")
    fresh = sqlite_register(tmp_path / "restored", clock)
    try:
        with pytest.raises(ValidationError, match=r"fails `credo audit verify`.*R-1"):
            restore_register(fresh, copied.path)
        assert _state(fresh) == (0, [])  # nothing was copied
    finally:
        fresh.engine.dispose()


def test_a_file_that_is_no_register_is_refused(filled: Register, tmp_path: Path) -> None:
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(ValidationError, match=r"not a readable SQLite database|integrity"):
        restore_register(filled, junk)
    empty = tmp_path / "empty.sqlite3"
    sqlite3.connect(empty).close()
    with pytest.raises(ValidationError, match="not a credo register"):
        restore_register(filled, empty)


def test_postgres_registers_are_pointed_to_pg_dump(pg_url: str, clock: FixedDateClock) -> None:
    register = build_register(Settings(database_url=pg_url), clock=clock)
    try:
        with pytest.raises(ValidationError, match="pg_dump"):
            backup_register(register, Path("/tmp/never-written"))
    finally:
        register.engine.dispose()


def test_cli_backup_and_restore(filled: Register, tmp_path: Path) -> None:
    runner = CliRunner()
    live = {"CREDO_HOME": str(tmp_path / "live"), "CREDO_DATABASE_URL": None}
    taken = runner.invoke(app, ["backup", str(tmp_path / "cli.backup")], env=live)
    assert taken.exit_code == 0, taken.output
    assert taken.stdout.startswith(f"backed up to {tmp_path / 'cli.backup'}: ")
    again = runner.invoke(app, ["backup", str(tmp_path / "cli.backup")], env=live)
    assert again.exit_code == 1 and "already exists" in again.stderr

    other = {"CREDO_HOME": str(tmp_path / "other"), "CREDO_DATABASE_URL": None}
    restored = runner.invoke(app, ["restore", str(tmp_path / "cli.backup")], env=other)
    assert restored.exit_code == 0, restored.output
    assert "audit chain intact" in restored.stdout and "40 records" in restored.stdout
    verified = runner.invoke(app, ["audit", "verify"], env=other)
    assert verified.exit_code == 0 and "audit chain intact" in verified.stdout
