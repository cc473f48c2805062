"""`credo audit verify`: recompute the chain and every batch digest against the stored rows."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, text

from credo.domain.filing import record_hash
from credo.domain.subjects import subject_hash
from credo.services.inquiries import LEGACY, LOGGED, inquiry_hash
from credo.services.register import Register
from credo.store.audit import GENESIS, entry_hash
from credo.store.tables import audit_entries, inquiries, records, subjects


@dataclass
class Verification:
    """The outcome: entries checked and every problem, the first one first."""

    entries: int = 0
    records: int = 0
    subjects: int = 0
    inquiries: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing was changed or deleted behind the application's back."""
        return not self.problems


def _digest_rows(hashes: list[str]) -> str:
    h = hashlib.sha256()
    for row_hash in hashes:
        h.update(row_hash.encode())
        h.update(b"\n")
    return h.hexdigest()


def verify_audit(
    register: Register, progress: Callable[[int], None] = lambda n: None
) -> Verification:
    """Walk the whole chain and all stored rows; name the first bad entry."""
    result = Verification()
    with register.read() as conn:
        batch_entries: dict[tuple[str, int], tuple[int, str | None, int]] = {}
        logged = Logged()
        prev = GENESIS
        expected_seq = 1
        for entry in conn.execution_options(yield_per=10_000).execute(
            select(audit_entries).order_by(audit_entries.c.seq)
        ):
            result.entries += 1
            if entry.seq != expected_seq:
                result.problems.append(
                    f"audit entry #{expected_seq} is missing (the next stored entry is "
                    f"#{entry.seq})"
                )
            if entry.prev_hash != prev:
                result.problems.append(
                    f"audit entry #{entry.seq} ({entry.action}): does not chain to the entry "
                    "before it"
                )
            recomputed = entry_hash(
                entry.prev_hash,
                entry.seq,
                entry.at,
                entry.actor,
                entry.action,
                entry.subject_id,
                entry.payload,
                entry.digest,
            )
            if recomputed != entry.hash:
                result.problems.append(
                    f"audit entry #{entry.seq} ({entry.action}): its content was changed "
                    "(hash mismatch)"
                )
            prev = entry.hash
            expected_seq = entry.seq + 1
            if entry.action == LEGACY:
                logged.legacy += 1
                continue
            payload: dict[str, Any] = json.loads(entry.payload)
            if entry.action == LOGGED:
                logged.entries[entry.seq] = (entry.digest, int(payload.get("inquiries", -1)))
            elif "batch_id" in payload and "stored" in payload:
                kind = "subjects" if entry.action == "subjects.imported" else "records"
                batch_entries[(kind, int(payload["batch_id"]))] = (
                    entry.seq,
                    entry.digest,
                    int(payload["stored"]),
                )
        progress(result.entries)
        _check_records(conn, batch_entries, result, progress)
        _check_subjects(conn, batch_entries, result)
        _check_inquiries(conn, logged, result)
        _check_references(conn, result)
    result.problems.sort(key=_entry_order)
    return result


@dataclass
class Logged:
    """The chain's inquiry entries: digest and count by sequence number, and how many
    inquiries were logged one entry each before migration 0010."""

    entries: dict[int, tuple[str | None, int]] = field(default_factory=dict)
    legacy: int = 0


def _check_inquiries(conn: Any, logged: Logged, result: Verification) -> None:
    """Every inquiry is still there as it was logged: each `inquiries.logged` entry's digest
    against its rows, and the older rows against the number of their own entries."""
    i = inquiries.c
    query = select(
        i.audit_seq, i.subject_id, i.authority_id, i.purpose, i.as_of, i.at, i.channel
    ).order_by(i.audit_seq)
    current: int | None = None
    hashes: list[str] = []
    legacy_rows = 0

    def close() -> None:
        assert current is not None
        found = logged.entries.pop(current, None)
        if found is None:
            result.problems.append(
                f"{len(hashes)} inquiries name audit entry #{current}, which logged no inquiries"
            )
            return
        digest, count = found
        if len(hashes) != count:
            result.problems.append(
                f"audit entry #{current} ({LOGGED}): it logged {count} inquiries, "
                f"{len(hashes)} are left"
            )
        elif _digest_rows(sorted(hashes)) != digest:
            result.problems.append(
                f"audit entry #{current} ({LOGGED}): the inquiries do not match its digest"
            )

    for row in conn.execution_options(yield_per=20_000).execute(query):
        result.inquiries += 1
        if row.audit_seq is None:
            legacy_rows += 1
            continue
        if row.audit_seq != current:
            if current is not None:
                close()
            current, hashes = row.audit_seq, []
        hashes.append(inquiry_hash(*row[1:]))
    if current is not None:
        close()
    for seq, (_, count) in sorted(logged.entries.items()):
        result.problems.append(
            f"audit entry #{seq} ({LOGGED}): all {count} of its inquiries are gone"
        )
    if legacy_rows != logged.legacy:
        result.problems.append(
            f"{logged.legacy} inquiries were logged with an entry each ({LEGACY}) before "
            f"migration 0010, {legacy_rows} such rows are stored"
        )


def _entry_order(problem: str) -> int:
    if problem.startswith("audit entry #"):
        return int(problem.split("#", 1)[1].split(" ", 1)[0])
    return 1 << 62


def _close_batch(
    kind: str,
    batch_id: int,
    hashes: list[str],
    batch_entries: dict[tuple[str, int], tuple[int, str | None, int]],
    result: Verification,
) -> None:
    entry = batch_entries.pop((kind, batch_id), None)
    if entry is None:
        result.problems.append(
            f"{kind} of batch {batch_id} ({len(hashes)} rows) are not covered by any audit entry"
        )
        return
    seq, digest, stored = entry
    if len(hashes) != stored:
        result.problems.append(
            f"audit entry #{seq} ({kind} batch {batch_id}): it stored {stored} rows, "
            f"{len(hashes)} are left"
        )
    elif _digest_rows(hashes) != digest:
        result.problems.append(
            f"audit entry #{seq} ({kind} batch {batch_id}): the rows do not match its digest"
        )


def _check_records(
    conn: Any,
    batch_entries: dict[tuple[str, int], tuple[int, str | None, int]],
    result: Verification,
    progress: Callable[[int], None],
) -> None:
    current: int | None = None
    hashes: list[str] = []
    first_seq: dict[int, int] = {k[1]: v[0] for k, v in batch_entries.items() if k[0] == "records"}
    query = select(records).order_by(records.c.batch_id, records.c.id)
    for row in conn.execution_options(yield_per=20_000).execute(query):
        result.records += 1
        if row.batch_id != current:
            if current is not None:
                _close_batch("records", current, hashes, batch_entries, result)
            current, hashes = row.batch_id, []
        recomputed = record_hash(
            row.authority_id,
            row.reference,
            row.version,
            row.subject_id,
            row.category,
            row.decided_on,
            row.occurred_on,
            row.legal_basis,
            row.summary,
            row.amount,
            row.evidence_uri,
        )
        if recomputed != row.row_hash:
            seq = first_seq.get(row.batch_id)
            where = (
                f"audit entry #{seq} (records batch {row.batch_id})"
                if seq
                else (f"batch {row.batch_id}")
            )
            result.problems.append(
                f"{where}: record {row.id} ({row.authority_id}/{row.reference}) was changed "
                "after it was filed"
            )
        hashes.append(row.row_hash)
        if result.records % 200_000 == 0:
            progress(result.entries + result.records)
    if current is not None:
        _close_batch("records", current, hashes, batch_entries, result)
    for (kind, batch_id), (seq, _, stored) in sorted(batch_entries.items()):
        if kind == "records" and stored:
            result.problems.append(
                f"audit entry #{seq} (records batch {batch_id}): all {stored} of its rows are gone"
            )


def _check_references(conn: Any, result: Verification) -> None:
    """The hot tables keep no foreign keys (and a register partitioned by subject loses the
    one from cases to records), so check here that nothing points nowhere."""
    for table, column, target in (
        ("records", "subject_id", "subjects"),
        ("inquiries", "subject_id", "subjects"),
        ("notices", "subject_id", "subjects"),
        ("records", "batch_id", "batches"),
        ("cases", "record_id", "records"),
    ):
        orphans = conn.execute(
            text(
                f"SELECT COUNT(*) FROM {table} t LEFT JOIN {target} x ON x.id = t.{column} "
                f"WHERE x.id IS NULL AND t.{column} IS NOT NULL"
            )
        ).scalar_one()
        if orphans:
            result.problems.append(
                f"{orphans} {table} rows name a {column} that does not exist in {target}"
            )


def _check_subjects(
    conn: Any,
    batch_entries: dict[tuple[str, int], tuple[int, str | None, int]],
    result: Verification,
) -> None:
    by_batch: dict[int, list[tuple[str, str]]] = {}
    for row in conn.execution_options(yield_per=20_000).execute(select(subjects)):
        result.subjects += 1
        recomputed = subject_hash(
            row.id, row.name, row.kind, row.organisation, row.position, row.email
        )
        if recomputed != row.row_hash:
            result.problems.append(
                f"subject {row.id!r} (batch {row.batch_id}) was changed after it was registered"
            )
        by_batch.setdefault(row.batch_id, []).append((row.id, row.row_hash))
    for batch_id, items in sorted(by_batch.items()):
        items.sort()
        _close_batch("subjects", batch_id, [h for _, h in items], batch_entries, result)
    for (kind, batch_id), (seq, _, stored) in sorted(batch_entries.items()):
        if kind == "subjects" and stored:
            result.problems.append(
                f"audit entry #{seq} (subjects batch {batch_id}): all {stored} of its rows are gone"
            )
