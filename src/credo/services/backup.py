"""`credo backup` and `credo restore`: a consistent copy of an embedded (SQLite) register.

The copy is taken with SQLite's online backup API while the register stays in use: readers
and writers go on, and the copy is the database as one transaction saw it. A restore
checks the copy first (SQLite's integrity check and `credo audit verify` against the copy
itself), then copies it over the register's database through the same API, so the
register is either the old one or the restored one, never half of each.

PostgreSQL registers are backed up with PostgreSQL's own tools (docs/operations.md):
`pg_dump --format=custom` and `pg_restore`, or continuous archiving for point-in-time
recovery.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from credo.domain.errors import ConflictError, ValidationError
from credo.services.audit_verify import Verification, verify_audit
from credo.services.register import Register
from credo.store.db import is_sqlite, make_engine, upgrade

PAGES = 4096  # pages copied per step: other connections may write between steps


@dataclass(frozen=True)
class Copied:
    """What a backup or a restore copied: the file, its size and its audit chain's head."""

    path: Path
    bytes: int
    audit_head: int


def backup_register(register: Register, path: Path) -> Copied:
    """Copy the register's SQLite database to `path`, a file that must not exist yet."""
    source = _sqlite_file(register.engine, "backup")
    if path.exists():
        raise ConflictError(
            f"{path} already exists: give a new file name (a backup never overwrites)"
        )
    if not path.parent.is_dir():
        raise ValidationError(f"{path.parent} is not a directory")
    partial = path.with_name(path.name + ".partial")
    try:
        _copy(source, partial)
        _check_integrity(partial)
        partial.rename(path)
    finally:
        partial.unlink(missing_ok=True)
    return Copied(path, path.stat().st_size, _audit_head(path))


def restore_register(register: Register, path: Path, *, replace: bool = False) -> Verification:
    """Replace the register's SQLite database with the backup at `path`, once the backup
    passes the integrity check and `credo audit verify`; returns that verification.

    A register that already holds anything is replaced only with `replace=True`.
    """
    target = _sqlite_file(register.engine, "restore")
    if not path.is_file():
        raise ValidationError(f"{path} is not a file")
    _check_integrity(path)
    copy_engine = make_engine(f"sqlite:///{path.resolve()}")
    try:
        if _audit_head(path) < 0:
            raise ValidationError(f"{path} is not a credo register (it has no audit log)")
        verification = verify_audit(Register(engine=copy_engine, clock=register.clock))
    finally:
        copy_engine.dispose()
    if not verification.ok:
        raise ValidationError(
            f"{path} fails `credo audit verify`, so it is not restored: {verification.problems[0]}"
        )
    if not replace and _audit_head(target) > 0:
        raise ConflictError(
            f"the register at {target} already holds audit entries: restoring would replace "
            "it; pass --replace to do so"
        )
    register.engine.dispose()  # no pooled connection may keep reading the old pages
    _copy(path, target)
    upgrade(register.engine)  # a backup from an older release gets the newer schema
    return verification


def _sqlite_file(engine: Engine, what: str) -> Path:
    if not is_sqlite(engine) or engine.url.database in (None, "", ":memory:"):
        raise ValidationError(
            f"credo {what} copies an embedded (SQLite) register; on PostgreSQL use "
            "pg_dump --format=custom and pg_restore (docs/operations.md, Backups)"
        )
    return Path(str(engine.url.database))


def _copy(source: Path, target: Path) -> None:
    """SQLite's online backup: the whole database as one transaction saw it."""
    src = sqlite3.connect(source)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst, pages=PAGES)
        finally:
            dst.close()
    finally:
        src.close()


def _check_integrity(path: Path) -> None:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        result = conn.execute("PRAGMA integrity_check").fetchone()
    except sqlite3.DatabaseError as exc:
        raise ValidationError(f"{path} is not a readable SQLite database: {exc}") from None
    finally:
        conn.close()
    if result is None or result[0] != "ok":
        raise ValidationError(f"{path} fails SQLite's integrity check: {result}")


def _audit_head(path: Path) -> int:
    """The highest audit entry number in the database at `path` (0: none; -1: no log)."""
    if not path.exists():
        return 0
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM audit_entries").fetchone()
    except sqlite3.OperationalError:
        return -1
    finally:
        conn.close()
    return int(row[0])
