"""A Parquet snapshot of the register: what set-based scoring reads, streamed table by table.

A snapshot is a directory that any engine reading Parquet can score from (Spark, DuckDB):

    manifest.json            format, as-of day, policy version, watermarks, row counts, hashes
    policy.toml              the active policy's text
    subjects/part-00000.parquet   id, kind, organisation, position (no names, no e-mail)
    records/part-00000.parquet    the columns the effectiveness condition reads
    cases/part-00000.parquet      objections only: filed_on, due_on, decided_on, category

Rows are read in id order inside one consistent read transaction and written in row groups
of `chunk` rows, so memory stays bounded by one chunk whatever the register's size.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import Table, func, select
from sqlalchemy.engine import Connection

from credo.domain.errors import ConflictError, NoActivePolicyError, ValidationError
from credo.store.tables import audit_entries, cases, policy_versions, records, subjects

FORMAT = 1
MANIFEST = "manifest.json"
POLICY_FILE = "policy.toml"

_TEXT, _DAY, _ID = pa.string(), pa.date32(), pa.int64()
SCHEMAS: dict[str, pa.Schema] = {
    "subjects": pa.schema(
        [("id", _TEXT), ("kind", _TEXT), ("organisation", _TEXT), ("position", _TEXT)]
    ),
    "records": pa.schema(
        [
            ("id", _ID),
            ("authority_id", _TEXT),
            ("reference", _TEXT),
            ("version", pa.int32()),
            ("subject_id", _TEXT),
            ("category", _TEXT),
            ("decided_on", _DAY),
            ("ends_on", _DAY),
            ("revoked", pa.bool_()),
            ("counts_from", _DAY),
            ("counts_until", _DAY),
            ("repaired_on", _DAY),
        ]
    ),
    "cases": pa.schema(
        [
            ("id", _ID),
            ("kind", _TEXT),
            ("subject_id", _TEXT),
            ("record_id", _ID),
            ("category", _TEXT),
            ("filed_on", _DAY),
            ("due_on", _DAY),
            ("decided_on", _DAY),
        ]
    ),
}
_SOURCES: dict[str, Table] = {"subjects": subjects, "records": records, "cases": cases}

Progress = Callable[[str, int], object]


@dataclass(frozen=True)
class Manifest:
    """What a snapshot holds; `data` is the parsed manifest.json."""

    data: dict[str, Any]

    @property
    def as_of(self) -> date:
        """The day the snapshot was taken (the default day to score as of)."""
        return date.fromisoformat(self.data["as_of"])

    @property
    def policy_version_id(self) -> int:
        """The id of the policy version that was active when the snapshot was taken."""
        return int(self.data["policy"]["version_id"])

    @property
    def watermarks(self) -> dict[str, int]:
        """The highest record id, case id and audit sequence number the snapshot saw."""
        return {k: int(v) for k, v in self.data["watermarks"].items()}

    def rows(self, table: str) -> int:
        """Rows of one table."""
        return int(self.data["tables"][table]["rows"])


def checksum(data: dict[str, Any]) -> str:
    """SHA-256 over the manifest's canonical JSON without its own checksum."""
    body = {k: v for k, v in data.items() if k != "checksum"}
    text_ = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text_.encode()).hexdigest()


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as stream:
        while block := stream.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _query(name: str) -> Any:
    table = _SOURCES[name]
    query = select(*(table.c[column] for column in SCHEMAS[name].names)).order_by(table.c.id)
    return query.where(table.c.kind == "objection") if name == "cases" else query


def _write_table(
    conn: Connection,
    root: Path,
    name: str,
    *,
    chunk: int,
    rows_per_file: int,
    progress: Progress,
) -> dict[str, Any]:
    """Stream one table into Parquet part files; a new part starts once one holds
    `rows_per_file` rows."""
    schema = SCHEMAS[name]
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    files: list[dict[str, Any]] = []
    writer: pq.ParquetWriter | None = None
    in_file = total = 0

    def close() -> None:
        nonlocal writer
        if writer is not None:
            writer.close()
            path = root / files[-1]["path"]
            files[-1].update(rows=in_file, sha256=_file_sha256(path))
            writer = None

    def open_next() -> pq.ParquetWriter:
        relative = f"{name}/part-{len(files):05d}.parquet"
        files.append({"path": relative})
        return pq.ParquetWriter(root / relative, schema, compression="zstd")

    result = conn.execution_options(stream_results=True, yield_per=chunk).execute(_query(name))
    for part in result.partitions(chunk):
        if writer is None or in_file >= rows_per_file:
            close()
            writer, in_file = open_next(), 0
        columns = list(zip(*part, strict=True))
        batch = pa.record_batch(
            [pa.array(col, type=field.type) for col, field in zip(columns, schema, strict=True)],
            schema=schema,
        )
        writer.write_batch(batch, row_group_size=chunk)
        in_file += len(part)
        total += len(part)
        progress(name, total)
    if writer is None:  # an empty table still gets one (empty) file, so readers see its schema
        writer = open_next()
        writer.write_table(schema.empty_table())
    close()
    return {"rows": total, "files": files}


def write_snapshot(
    conn: Connection,
    directory: Path,
    *,
    as_of: date,
    now: datetime,
    chunk: int = 100_000,
    rows_per_file: int = 4_000_000,
    progress: Progress = lambda table, rows: None,
) -> Manifest:
    """Write the register's scoring tables, policy and manifest under `directory`.

    Call inside one read transaction (REPEATABLE READ on PostgreSQL) so the tables agree.
    The directory must be new or empty: a snapshot never mixes with older files.
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConflictError(f"cannot write a snapshot to {directory}: {exc.strerror}") from None
    if any(directory.iterdir()):
        raise ConflictError(f"{directory} is not empty: a snapshot needs a new or empty directory")
    active = conn.execute(
        select(
            policy_versions.c.id,
            policy_versions.c.policy_id,
            policy_versions.c.version,
            policy_versions.c.text,
            policy_versions.c.digest,
        ).where(policy_versions.c.active)
    ).first()
    if active is None:
        raise NoActivePolicyError("no policy is active yet: run `credo policy activate FILE` first")
    watermarks = {
        "records": conn.execute(select(func.coalesce(func.max(records.c.id), 0))).scalar_one(),
        "cases": conn.execute(select(func.coalesce(func.max(cases.c.id), 0))).scalar_one(),
        "audit": conn.execute(select(func.coalesce(func.max(audit_entries.c.seq), 0))).scalar_one(),
    }
    tables = {
        name: _write_table(
            conn, directory, name, chunk=chunk, rows_per_file=rows_per_file, progress=progress
        )
        for name in SCHEMAS
    }
    (directory / POLICY_FILE).write_text(active.text, encoding="utf-8")
    data: dict[str, Any] = {
        "format": FORMAT,
        "created_at": now.isoformat(),
        "as_of": as_of.isoformat(),
        "store": conn.dialect.name,
        "policy": {
            "version_id": int(active.id),
            "label": f"{active.policy_id}@{active.version}",
            "digest": active.digest,
            "file": POLICY_FILE,
            "sha256": hashlib.sha256(active.text.encode()).hexdigest(),
        },
        "watermarks": {k: int(v) for k, v in watermarks.items()},
        "tables": tables,
    }
    data["checksum"] = checksum(data)
    (directory / MANIFEST).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return Manifest(data)


def parse_manifest(text_: str) -> Manifest:
    """A manifest from its JSON text, its checksum and format checked."""
    data = json.loads(text_)
    if data.get("format") != FORMAT:
        raise ValidationError(f"unknown snapshot format {data.get('format')!r} (expected {FORMAT})")
    if data.get("checksum") != checksum(data):
        raise ValidationError("the snapshot manifest's checksum does not match its content")
    return Manifest(data)


def verify_snapshot(directory: Path) -> Manifest:
    """Check a local snapshot: manifest checksum, every file's SHA-256 and row count."""
    manifest = parse_manifest((directory / MANIFEST).read_text(encoding="utf-8"))
    policy = manifest.data["policy"]
    text_ = (directory / policy["file"]).read_text(encoding="utf-8")
    if hashlib.sha256(text_.encode()).hexdigest() != policy["sha256"]:
        raise ValidationError(f"{policy['file']} does not match the manifest")
    for name, table in manifest.data["tables"].items():
        for entry in table["files"]:
            path = directory / entry["path"]
            if _file_sha256(path) != entry["sha256"]:
                raise ValidationError(f"{entry['path']} does not match the manifest")
            if pq.ParquetFile(path).metadata.num_rows != entry["rows"]:
                raise ValidationError(f"{entry['path']} does not hold {entry['rows']} rows")
        if sum(e["rows"] for e in table["files"]) != table["rows"]:
            raise ValidationError(f"the {name} files do not add up to {table['rows']} rows")
    return manifest
