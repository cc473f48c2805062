"""Bulk record imports from real CSV and JSON Lines files (DESIGN 4.2), on both stores."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from credo.clock import FixedDateClock
from credo.domain.durations import Duration
from credo.domain.errors import ValidationError
from credo.domain.filing import RECORD_FIELDS
from credo.services.audit_verify import verify_audit
from credo.services.filing import subject_standing
from credo.services.importing import ImportReport, Reject, import_records
from credo.services.importing import import_file as import_records_file
from credo.services.policies import activate_policy
from credo.services.register import Register
from credo.services.sources import detect_format, read_rows
from credo.services.subjects import import_subjects
from credo.store import repository
from credo.store.db import is_sqlite
from credo.store.rescore import REGISTER_LOCK
from credo.store.tables import notices, records, standings, subjects
from tests.conftest import TODAY
from tests.factories import dates_policy, record, rows, seed_register, subject

COLUMNS = [
    "reference",
    "subject_id",
    "category",
    "decided_on",
    "occurred_on",
    "legal_basis",
    "summary",
]


def write_csv(path: Path, items: list[dict[str, Any]], columns: list[str] = COLUMNS) -> Path:
    """A CSV file with a header line, one row per item (missing keys are empty)."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for item in items:
            writer.writerow([item.get(c, "") for c in columns])
    return path


def write_jsonl(path: Path, lines: list[Any]) -> Path:
    """A JSON Lines file: dicts and lists are dumped, strings written as they are."""
    with path.open("w", encoding="utf-8") as handle:
        for line in lines:
            handle.write((line if isinstance(line, str) else json.dumps(line)) + "\n")
    return path


def keeper() -> tuple[dict[int, Reject], Callable[[Reject], None]]:
    """Rejects keyed by line, and the hook that keeps them (each line at most once)."""
    rejects: dict[int, Reject] = {}

    def keep(reject: Reject) -> None:
        assert reject.line not in rejects, f"line {reject.line} rejected twice"
        rejects[reject.line] = reject

    return rejects, keep


def import_file(
    register: Register, path: Path, authority: str = "city-court"
) -> tuple[ImportReport, dict[int, Reject]]:
    """Import a file as `credo import FILE --authority ID` does; rejects keyed by line."""
    rejects, keep = keeper()
    with path.open("rb") as stream:
        report = import_records(
            register,
            read_rows(stream, detect_format(path), RECORD_FIELDS),
            authority_id=authority,
            actor="test",
            source=path.name,
            on_reject=keep,
        )
    assert report.rejected == len(rejects)
    return report, rejects


def count(register: Register, table: Any) -> int:
    with register.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def stored_references(register: Register) -> set[str]:
    with register.read() as conn:
        return set(conn.execute(select(records.c.reference)).scalars())


def assert_rejected(rejects: dict[int, Reject], line: int, field: str, words: str = "") -> None:
    assert line in rejects, f"line {line} was not rejected (rejected: {sorted(rejects)})"
    reject = rejects[line]
    locations = [p.location for p in reject.problems]
    assert field in locations, f"line {line}: {reject.reason!r} does not name {field!r}"
    assert field in reject.reason
    assert words.lower() in reject.reason.lower(), reject.reason


GOOD = record("GOOD-1", "s-001", "court.order_defiance", "2026-01-10")
GOOD_LAST = record(
    "GOOD-2", "s-002", "court.order_defiance", "2026-03-15", occurred_on="2026-03-15"
)

# (row, the field its reason must name, a word the reason must hold)
BAD_ROWS: list[tuple[dict[str, Any], str, str]] = [
    (record("B-subject", "s-999", "court.order_defiance", "2026-01-10"), "subject_id", "s-999"),
    (record("B-category", "s-001", "court.no_such_thing", "2026-01-10"), "category", "unknown"),
    (record("B-may-file", "s-001", "tax.arrears", "2026-01-10"), "category", "may not file"),
    (record("B-future", "s-001", "court.order_defiance", "2026-03-16"), "decided_on", "future"),
    (
        record(
            "B-occurred", "s-001", "court.order_defiance", "2026-01-10", occurred_on="2026-01-11"
        ),
        "occurred_on",
        "after",
    ),
    (
        record("B-basis", "s-001", "court.order_defiance", "2026-01-10", legal_basis=""),
        "legal_basis",
        "required",
    ),
    (
        record("B-basis-blank", "s-001", "court.order_defiance", "2026-01-10", legal_basis="   "),
        "legal_basis",
        "required",
    ),
    (record("B-month13", "s-001", "court.order_defiance", "2026-13-01"), "decided_on", "date"),
    (record("B-slashes", "s-001", "court.order_defiance", "15/03/2026"), "decided_on", "date"),
    (record("B-compact", "s-001", "court.order_defiance", "20260315"), "decided_on", "date"),
    (record("B-feb30", "s-001", "court.order_defiance", "2026-02-30"), "decided_on", "date"),
    (
        record(
            "B-occurred-bad",
            "s-001",
            "court.order_defiance",
            "2026-01-10",
            occurred_on="2026/01/01",
        ),
        "occurred_on",
        "date",
    ),
    (
        record("B-summary", "s-001", "court.order_defiance", "2026-01-10", summary="x" * 2001),
        "summary",
        "2000",
    ),
    (record("R" * 129, "s-001", "court.order_defiance", "2026-01-10"), "reference", "128"),
    (record("", "s-001", "court.order_defiance", "2026-01-10"), "reference", "required"),
    (record("B-nosubject", "", "court.order_defiance", "2026-01-10"), "subject_id", "required"),
]


def test_csv_rejects_every_bad_row_with_its_line_and_field(
    register: Register, tmp_path: Path
) -> None:
    seed_register(register)
    items = [GOOD] + [row for row, _, _ in BAD_ROWS] + [GOOD_LAST]
    path = write_csv(tmp_path / "court.csv", items)

    report, rejects = import_file(register, path)

    assert report.stored == 2
    assert report.duplicates == 0
    assert report.rejected == len(BAD_ROWS)
    for n, (_, field, words) in enumerate(BAD_ROWS):
        assert_rejected(rejects, n + 3, field, words)  # header is line 1, GOOD is line 2
    assert stored_references(register) == {"GOOD-1", "GOOD-2"}
    assert count(register, records) == 2


def test_a_summary_of_exactly_2000_characters_is_stored(register: Register, tmp_path: Path) -> None:
    seed_register(register)
    path = write_csv(
        tmp_path / "c.csv",
        [
            record("LONG", "s-001", "court.order_defiance", "2026-01-10", summary="é" * 2000),
            record("R" * 128, "s-001", "court.order_defiance", "2026-01-10"),
        ],
    )
    report, rejects = import_file(register, path)
    assert rejects == {}
    assert report.stored == 2
    with register.read() as conn:
        summary = conn.execute(
            select(records.c.summary).where(records.c.reference == "LONG")
        ).scalar_one()
    assert summary == "é" * 2000


def test_jsonl_rejects_every_bad_row_with_its_line_and_field(
    register: Register, tmp_path: Path
) -> None:
    seed_register(register)
    lines: list[Any] = [
        GOOD,  # 1
        "{not json",  # 2
        ["R-array", "s-001"],  # 3
        "",  # 4 (blank, skipped)
        {
            **record("J-authority", "s-001", "court.order_defiance", "2026-01-10"),
            "authority": "city-tax",
        },  # 5
        {
            **record("J-unknown", "s-001", "court.order_defiance", "2026-01-10"),
            "colour": "red",
        },  # 6
        record("J-future", "s-001", "court.order_defiance", "2027-01-01"),  # 7
        {
            **record("J-number", "s-001", "court.order_defiance", "2026-01-10"),
            "decided_on": 20260110,
        },  # 8
        '"just a string"',  # 9
        record("J-subject", "s-404", "court.order_defiance", "2026-01-10"),  # 10
        GOOD_LAST,  # 11
    ]
    path = write_jsonl(tmp_path / "court.jsonl", lines)

    report, rejects = import_file(register, path)

    assert report.stored == 2
    assert set(rejects) == {2, 3, 5, 6, 7, 8, 9, 10}
    assert "json" in rejects[2].reason.lower()
    assert "object" in rejects[3].reason.lower()
    assert "object" in rejects[9].reason.lower()
    assert_rejected(rejects, 5, "authority", "credentials")
    assert_rejected(rejects, 6, "colour", "unknown")
    assert_rejected(rejects, 7, "decided_on", "future")
    assert_rejected(rejects, 8, "decided_on", "string")
    assert_rejected(rejects, 10, "subject_id", "s-404")
    assert stored_references(register) == {"GOOD-1", "GOOD-2"}


def test_a_csv_column_named_authority_refuses_the_whole_file(
    register: Register, tmp_path: Path
) -> None:
    seed_register(register)
    item = {**GOOD, "authority": "city-tax"}
    path = write_csv(tmp_path / "c.csv", [item, GOOD_LAST], [*COLUMNS, "authority"])
    with pytest.raises(ValidationError) as caught:
        import_file(register, path)
    assert any(
        "authority" in p.location and "credentials" in p.message for p in caught.value.problems
    )
    assert count(register, records) == 0


def test_an_unknown_csv_column_refuses_the_whole_file(register: Register, tmp_path: Path) -> None:
    seed_register(register)
    path = write_csv(tmp_path / "c.csv", [{**GOOD, "colour": "red"}], [*COLUMNS, "colour"])
    with pytest.raises(ValidationError) as caught:
        import_file(register, path)
    assert [p.location for p in caught.value.problems] == ["line 1, column 'colour'"]
    assert "unknown column" in str(caught.value)
    assert count(register, records) == 0


def test_a_csv_row_with_the_wrong_number_of_fields_is_rejected(
    register: Register, tmp_path: Path
) -> None:
    seed_register(register)
    path = write_csv(tmp_path / "c.csv", [GOOD])
    with path.open("a", encoding="utf-8", newline="") as handle:
        handle.write("SHORT,s-001,court.order_defiance\r\n")  # line 3
        handle.write("LONG,s-001,court.order_defiance,2026-01-10,,Law,s,extra\r\n")  # line 4
        handle.write("\r\n")  # line 5, blank
        handle.write("OK-3,s-003,court.order_defiance,2026-02-01,,Law,fine\r\n")  # line 6
        handle.write("BAD-6,s-003,court.order_defiance,2026-02-31,,Law,bad\r\n")  # line 7
    report, rejects = import_file(register, path)
    assert set(rejects) == {3, 4, 7}
    assert "3 fields" in rejects[3].reason and "7" in rejects[3].reason
    assert "8 fields" in rejects[4].reason
    assert_rejected(rejects, 7, "decided_on")
    assert report.stored == 2
    assert stored_references(register) == {"GOOD-1", "OK-3"}


def test_csv_line_numbers_count_quoted_fields_that_span_lines(
    register: Register, tmp_path: Path
) -> None:
    seed_register(register)
    items = [
        record(
            "ML-1", "s-001", "court.order_defiance", "2026-01-10", summary="first line\nsecond line"
        ),  # lines 2-3
        record("ML-2", "s-001", "court.order_defiance", "2026-99-10"),  # line 4
        record(
            "ML-3", "s-002", "court.order_defiance", "2026-01-10", summary="a\nb\nc"
        ),  # lines 5-7
        record(
            "ML-4",
            "s-002",
            "court.order_defiance",
            "2026-01-10",
            summary="spans\ntwo",
            legal_basis="",
        ),  # lines 8-9
        record("ML-5", "s-999", "court.order_defiance", "2026-01-10"),  # line 10
    ]
    path = write_csv(tmp_path / "c.csv", items)
    report, rejects = import_file(register, path)
    assert set(rejects) == {4, 8, 10}
    assert_rejected(rejects, 4, "decided_on")
    assert_rejected(rejects, 8, "legal_basis")
    assert_rejected(rejects, 10, "subject_id")
    assert report.stored == 2
    with register.read() as conn:
        summary = conn.execute(
            select(records.c.summary).where(records.c.reference == "ML-1")
        ).scalar_one()
    assert summary == "first line\nsecond line"


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_rerunning_the_same_file_stores_nothing_twice(
    register: Register, tmp_path: Path, suffix: str
) -> None:
    seed_register(register)
    items = [
        record("RR-1", "s-001", "court.order_defiance", "2026-01-10"),
        record("RR-2", "s-002", "court.order_defiance", "2026-02-10", occurred_on="2026-01-01"),
        record("RR-3", "s-003", "court.order_defiance", "2025-12-31"),
        record("RR-bad", "s-003", "court.order_defiance", "2031-01-01"),
    ]
    path = (
        write_csv(tmp_path / "c.csv", items)
        if suffix == "csv"
        else write_jsonl(tmp_path / "c.jsonl", items)
    )
    first, _ = import_file(register, path)
    assert (first.stored, first.duplicates, first.rejected) == (3, 0, 1)
    with register.read() as conn:
        before = conn.execute(select(records).order_by(records.c.id)).all()

    again, rejects = import_file(register, path)

    assert (again.stored, again.duplicates, again.rejected) == (0, 3, 1)
    assert set(rejects) == {5 if suffix == "csv" else 4}
    with register.read() as conn:
        after = conn.execute(select(records).order_by(records.c.id)).all()
    assert after == before
    assert count(register, records) == 3


def test_a_row_refused_after_validation_keeps_its_fields_for_the_rejects_file(
    register: Register, tmp_path: Path
) -> None:
    seed_register(register)
    summary = "tab\there, back\\slash"
    unknown = record("B-who", "s-999", "court.order_defiance", "2026-01-10", summary=summary)
    _, rejects = import_file(register, write_csv(tmp_path / "a.csv", [unknown]))
    assert_rejected(rejects, 2, "subject_id", "s-999")
    assert rejects[2].raw == (
        f"B-who,s-999,court.order_defiance,2026-01-10,,Test Law art. 1,{summary},,"
    )


def test_the_same_reference_with_other_content_is_refused(
    register: Register, tmp_path: Path
) -> None:
    seed_register(register)
    import_file(register, write_csv(tmp_path / "a.csv", [GOOD]))
    changed = [
        {**GOOD, "summary": "a different summary"},  # line 2
        {**GOOD, "decided_on": "2026-01-11"},  # line 3
        record("NEW-1", "s-002", "court.order_defiance", "2026-01-10"),  # line 4
        GOOD,  # line 5
    ]
    report, rejects = import_file(register, write_csv(tmp_path / "b.csv", changed))
    assert set(rejects) == {2, 3}
    assert_rejected(rejects, 2, "reference", "already filed")
    assert_rejected(rejects, 3, "reference", "already filed")
    assert (report.stored, report.duplicates) == (1, 1)
    with register.read() as conn:
        summary = conn.execute(
            select(records.c.summary).where(records.c.reference == "GOOD-1")
        ).scalar_one()
    assert summary == GOOD["summary"]
    assert count(register, records) == 2


def test_the_same_reference_twice_in_one_file_with_other_content_is_refused(
    register: Register, tmp_path: Path
) -> None:
    seed_register(register)
    path = write_csv(tmp_path / "c.csv", [GOOD, {**GOOD, "summary": "other"}, GOOD])
    report, rejects = import_file(register, path)
    assert set(rejects) == {3}
    assert_rejected(rejects, 3, "reference")
    assert (report.stored, report.duplicates) == (1, 1)


def test_the_same_reference_may_be_used_by_another_authority(
    register: Register, tmp_path: Path
) -> None:
    seed_register(register)
    import_file(
        register,
        write_csv(
            tmp_path / "a.csv", [record("SHARED", "s-001", "court.order_defiance", "2026-01-10")]
        ),
    )
    report, rejects = import_file(
        register,
        write_csv(tmp_path / "b.csv", [record("SHARED", "s-001", "tax.arrears", "2026-01-10")]),
        authority="city-tax",
    )
    assert rejects == {}
    assert report.stored == 1
    assert count(register, records) == 2


INJECTIONS = [
    "x'); DROP TABLE records;--",
    "<script>alert(1)</script>",
    '" OR 1=1',
    "' OR '1'='1",
    "Robert'); DELETE FROM subjects; --",
    "\\'; DROP TABLE audit_entries; --",
]


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_injection_strings_are_stored_verbatim_as_data(
    register: Register, tmp_path: Path, suffix: str
) -> None:
    seed_register(register)
    items = [
        record(text, "s-001", "court.order_defiance", "2026-01-10", summary=text, legal_basis=text)
        for text in INJECTIONS
    ]
    items.append(record("CAT", "s-001", "x'); DROP TABLE records;--", "2026-01-10"))
    items.append(record("SUBJ", "s-001' OR '1'='1", "court.order_defiance", "2026-01-10"))
    path = (
        write_csv(tmp_path / "c.csv", items)
        if suffix == "csv"
        else write_jsonl(tmp_path / "c.jsonl", items)
    )

    report, rejects = import_file(register, path)

    assert report.stored == len(INJECTIONS)
    assert len(rejects) == 2
    assert {p.location for r in rejects.values() for p in r.problems} == {"category", "subject_id"}
    with register.read() as conn:
        stored = {(r.reference, r.summary, r.legal_basis) for r in conn.execute(select(records))}
        _, policy = register.active_policy(conn)
        pure = subject_standing(conn, policy, "s-001", TODAY)
    assert stored == {(t, t, t) for t in INJECTIONS}
    assert count(register, subjects) == 3
    assert count(register, records) == len(INJECTIONS)
    assert pure.score == 800  # six defiance records, capped at -200
    assert {line.reference for line in pure.explanation} == set(INJECTIONS)
    again, _ = import_file(register, path)
    assert (again.stored, again.duplicates) == (0, len(INJECTIONS))


def test_tabs_newlines_and_backslashes_in_a_summary_are_stored_verbatim(
    register: Register, tmp_path: Path
) -> None:
    """PostgreSQL stores an import through COPY text, where these characters are syntax."""
    seed_register(register)
    summary = "line one\nline two\twith a tab, \\N, a back\\slash and \\t literally"
    items = [record("ESC-1", "s-001", "court.order_defiance", "2026-01-10", summary=summary)]
    report, rejects = import_file(register, write_csv(tmp_path / "e.csv", items))
    assert (report.stored, rejects) == (1, {})
    with register.read() as conn:
        stored = conn.execute(select(records.c.summary)).scalar_one()
    assert stored == summary


def _assert_standings_current(register: Register, today: date = TODAY) -> None:
    with register.read() as conn:
        _, policy = register.active_policy(conn)
        stored = conn.execute(select(standings)).all()
        # The register says as of which day its stored standings hold; a row's own as_of
        # is the day it was last recomputed, which may be earlier when nothing changed.
        scored = conn.execute(text("SELECT scored_as_of FROM register_state")).scalar_one()
        assert str(scored) == today.isoformat()
        assert len(stored) == count(register, subjects)
        for row in stored:
            pure = subject_standing(conn, policy, row.subject_id, today)
            assert row.as_of <= today, row.subject_id
            assert (row.score, row.grade, row.lists, row.measures) == (
                pure.score,
                pure.grade,
                ",".join(pure.lists),
                ",".join(pure.measures),
            ), row.subject_id


def test_stored_standings_are_current_after_an_import(register: Register, tmp_path: Path) -> None:
    seed_register(register, subjects=3)
    report, _ = import_file(
        register,
        write_csv(
            tmp_path / "c.csv",
            [
                record("C-1", "s-001", "court.order_defiance", "2026-01-10"),
                record("C-2", "s-001", "court.order_defiance", "2026-03-01"),
                record("C-3", "s-002", "court.order_defiance", "2025-01-10"),
            ],
        ),
    )
    assert report.stored == 3
    assert report.rescored >= 2
    _assert_standings_current(register)
    with register.read() as conn:
        row = conn.execute(select(standings).where(standings.c.subject_id == "s-001")).one()
    assert (row.score, row.grade, row.lists) == (800, "D", "dishonest")
    # a later, small import touches few subjects: the pending-only rescore path
    import_subjects(register, rows(subject(n) for n in range(4, 21)), actor="t", source="t")
    report, _ = import_file(
        register,
        write_csv(
            tmp_path / "tax.csv",
            [
                record("T-1", "s-003", "tax.arrears", "2026-02-01"),
            ],
        ),
        authority="city-tax",
    )
    assert report.stored == 1
    assert report.rescored == 1
    _assert_standings_current(register)
    with register.read() as conn:
        row = conn.execute(select(standings).where(standings.c.subject_id == "s-003")).one()
    assert (row.score, row.grade, row.measures) == (940, "C", "tax.strict")


def test_stored_standings_are_current_after_an_import_on_a_later_day(
    register: Register, clock: FixedDateClock, tmp_path: Path
) -> None:
    seed_register(register, subjects=20)
    import_file(
        register,
        write_csv(
            tmp_path / "a.csv",
            [
                record(f"A-{n}", f"s-{n:03d}", "court.order_defiance", "2026-01-10")
                for n in range(1, 11)
            ],
        ),
    )
    _assert_standings_current(register)
    # Two years on, the defiance records have expired; one new record is filed.
    clock.day = date(2028, 3, 15)
    report, _ = import_file(
        register,
        write_csv(
            tmp_path / "b.csv",
            [
                record("B-1", "s-020", "court.order_defiance", "2028-03-01"),
            ],
        ),
    )
    assert report.stored == 1
    _assert_standings_current(register, clock.day)


def test_stored_ends_on_is_decided_on_plus_valid_for_with_month_end_clamping(
    register: Register, tmp_path: Path
) -> None:
    durations = {"p1m": "P1M", "p1y": "P1Y", "p1m1d": "P1M1D", "p3d": "P3D", "p18m": "P18M"}
    activate_policy(register, dates_policy(durations), actor="test", comment="test")
    import_subjects(register, rows([subject(1)]), actor="test", source="t")
    days = ["2024-01-31", "2023-01-31", "2024-02-29", "2023-08-31", "2024-12-31", "2025-10-31"]
    items = [
        record(f"{name}-{day}", "s-001", f"d.{name}", day) for name in durations for day in days
    ]
    report, rejects = import_file(register, write_jsonl(tmp_path / "d.jsonl", items), "hr")
    assert rejects == {}
    assert report.stored == len(items)
    with register.read() as conn:
        stored = {r.reference: r.ends_on for r in conn.execute(select(records))}
    for name, valid_for in durations.items():
        for day in days:
            expected = Duration.parse(valid_for).add_to(date.fromisoformat(day))
            assert stored[f"{name}-{day}"] == expected, (name, day)
    assert stored["p1m-2024-01-31"] == date(2024, 2, 29)
    assert stored["p1m-2023-01-31"] == date(2023, 2, 28)
    assert stored["p1m1d-2024-01-31"] == date(2024, 3, 1)
    assert stored["p1y-2024-02-29"] == date(2025, 2, 28)
    assert stored["p18m-2023-08-31"] == date(2025, 2, 28)


def test_a_big_import_leaves_postgresql_with_fresh_statistics(
    register: Register, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without statistics PostgreSQL planned the closing rescore over a freshly loaded
    register as a bitmap of every live record per list member (hours at 10M records).
    SQLite plans without statistics: nothing is analysed there."""
    monkeypatch.setattr(repository, "BIG_LOAD", 2)
    seed_register(register)
    items = [record(f"BIG-{n}", "s-001", "court.order_defiance", "2026-01-10") for n in range(3)]
    report, _ = import_file(register, write_csv(tmp_path / "big.csv", items))
    assert report.stored == 3
    with register.read() as conn:
        if is_sqlite(register.engine):
            stats = "SELECT name FROM sqlite_master WHERE name = 'sqlite_stat1'"
        else:
            stats = (  # this test's own schema: the database may hold others
                "SELECT relname FROM pg_stat_user_tables WHERE last_analyze IS NOT NULL "
                "AND schemaname = current_schema() AND relname IN ('records', 'notices') "
                "ORDER BY relname"
            )
        analysed = list(conn.execute(text(stats)).scalars())
    assert analysed == ([] if is_sqlite(register.engine) else ["notices", "records"])


def test_record_ids_are_fresh_whether_or_not_the_sequence_hands_them_out_in_a_row(
    register: Register,
) -> None:
    with register.write() as conn:
        alone = repository.new_record_ids(conn, 5)
        assert alone == list(range(alone[0], alone[0] + 5))
        if not is_sqlite(conn):  # another filer drawing in between leaves gaps
            conn.execute(text("ALTER SEQUENCE records_id_seq INCREMENT BY 3"))
            beside = repository.new_record_ids(conn, 4)
            assert beside == [beside[0] + 3 * n for n in range(4)]
            assert beside[0] > alone[-1]


# ----------------------------------------------------------------------------- optimism


def load(
    register: Register,
    path: Path,
    *,
    chunk_bytes: int = 300,
    workers: int = 0,
    on_reject: Callable[[Reject], None] | None = None,
) -> tuple[ImportReport, dict[int, Reject]]:
    """`credo import` itself: small chunks, all stored in one transaction, validated in this
    process (or in `workers` processes); the rejects kept by line unless `on_reject`."""
    rejects, keep = keeper()
    with path.open("rb") as stream:
        report = import_records_file(
            register,
            stream,
            "csv",
            authority_id="city-court",
            actor="test",
            source=path.name,
            chunk_bytes=chunk_bytes,
            commit_rows=10_000,
            workers=workers,
            on_reject=keep if on_reject is None else on_reject,
        )
    return report, rejects


def filed_batches(register: Register) -> int:
    with register.read() as conn:
        query = "SELECT COUNT(*) FROM audit_entries WHERE action = 'records.filed'"
        return int(conn.execute(text(query)).scalar_one())


def partly_filed(register: Register, tmp_path: Path) -> list[dict[str, Any]]:
    """30 rows of which rows 10 to 19 were filed before, alone."""
    seed_register(register)
    items = [
        record(f"P-{n:02d}", f"s-00{n % 3 + 1}", "court.order_defiance", "2026-01-10")
        for n in range(30)
    ]
    earlier, _ = load(register, write_csv(tmp_path / "middle.csv", items[10:20]))
    assert (earlier.stored, earlier.duplicates, earlier.rejected) == (10, 0, 0)
    return items


def test_a_file_partly_filed_before_stores_each_new_row_once(
    register: Register, tmp_path: Path
) -> None:
    """A load stores a batch before looking its references up; the batch that repeats a
    filed one is undone to its savepoint, in the middle of a transaction holding the batches
    before it, and stored the careful way, as is every batch after it."""
    items = partly_filed(register, tmp_path)
    before = filed_batches(register)

    report, rejects = load(register, write_csv(tmp_path / "all.csv", items))

    assert (report.stored, report.duplicates, report.rejected) == (20, 10, 0)
    assert rejects == {}
    assert report.batches > 2  # the small chunks made several batches before the middle
    with register.read() as conn:
        refs = conn.execute(select(records.c.reference).order_by(records.c.id)).scalars().all()
    assert sorted(refs) == [f"P-{n:02d}" for n in range(30)]
    assert filed_batches(register) == before + report.batches  # one audit entry each
    assert verify_audit(register).ok


def test_every_stored_record_has_one_filed_notice_for_its_subject_in_record_order(
    register: Register, tmp_path: Path
) -> None:
    """Also across the batch undone to its savepoint: its notices go with its records."""
    items = partly_filed(register, tmp_path)

    load(register, write_csv(tmp_path / "all.csv", items))

    with register.read() as conn:
        stored = conn.execute(
            select(records.c.id, records.c.subject_id).order_by(records.c.id)
        ).all()
        filed = conn.execute(
            select(notices.c.record_id, notices.c.subject_id, notices.c.status)
            .where(notices.c.kind == "record.filed")
            .order_by(notices.c.id)
        ).all()
    assert len(stored) == 30
    assert [(n.record_id, n.subject_id) for n in filed] == [tuple(r) for r in stored]
    assert {n.status for n in filed} == {"pending"}


def test_a_changed_row_of_a_partly_filed_file_is_refused_and_the_rest_stored(
    register: Register, tmp_path: Path
) -> None:
    items = partly_filed(register, tmp_path)
    items[15] = {**items[15], "summary": "Another account of the decision."}
    items.append(record("P-04", "s-002", "court.order_defiance", "2026-02-01"))  # repeated

    report, rejects = load(register, write_csv(tmp_path / "all.csv", items))

    assert (report.stored, report.duplicates, report.rejected) == (20, 9, 2)
    assert set(rejects) == {17, 32}  # header on line 1: row n on line n + 2
    for line in (17, 32):
        assert_rejected(rejects, line, "reference", "different content")
    assert count(register, records) == 30
    assert verify_audit(register).ok


def test_an_import_that_fails_keeps_nothing_it_had_not_committed_and_gives_the_lock_back(
    register: Register, tmp_path: Path
) -> None:
    """On PostgreSQL the import's writing connection holds the register lock for its whole
    run (no rescore between its transactions); a run that fails half-way must roll its open
    transaction back and release the lock, or every later rescore would wait for ever."""
    seed_register(register)
    items = [
        record(f"F-{n:02d}", f"s-00{n % 3 + 1}", "court.order_defiance", "2026-01-10")
        for n in range(30)
    ]
    items[20] = {**items[20], "category": "no.such_category"}
    path = write_csv(tmp_path / "fails.csv", items)

    def unwritable(reject: Reject) -> None:
        raise OSError("the rejects file cannot be written")

    with pytest.raises(OSError, match="rejects file"):
        load(register, path, on_reject=unwritable)

    with register.read() as conn:
        assert conn.execute(select(func.count()).select_from(records)).scalar_one() == 0
        if not is_sqlite(conn):
            held = "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = :key"
            assert conn.execute(text(held), {"key": REGISTER_LOCK}).scalar_one() == 0
    report, rejects = load(register, path)
    assert (report.stored, report.rejected) == (29, 1)
    assert list(rejects) == [22]
    assert verify_audit(register).ok


def test_an_import_validated_in_a_worker_process_refuses_and_stores_the_same_rows(
    register: Register, tmp_path: Path
) -> None:
    """A big file is validated in worker processes (which, on SQLite, also check the chunk's
    subjects, reading the database themselves): the same rows stored and refused, with the
    same lines and reasons, as when one process does it all."""
    seed_register(register)
    items = [
        record(f"W-{n:03d}", f"s-00{n % 3 + 1}", "court.order_defiance", "2026-01-10")
        for n in range(60)
    ]
    items[7] = {**items[7], "subject_id": "s-999"}
    items[31] = {**items[31], "decided_on": "2026-13-01"}
    items[45] = {**items[45], "subject_id": "s-998"}
    path = write_csv(tmp_path / "big.csv", items)

    report, rejects = load(register, path, workers=1)

    assert (report.stored, report.duplicates, report.rejected) == (57, 0, 3)
    assert sorted(rejects) == [9, 33, 47]
    assert "subject 's-999' is not registered" in rejects[9].reason
    assert "decided_on" in rejects[33].reason
    assert "subject 's-998' is not registered" in rejects[47].reason
    with register.read() as conn:
        refs = conn.execute(select(records.c.reference).order_by(records.c.id)).scalars().all()
    assert refs == [item["reference"] for n, item in enumerate(items) if n not in (7, 31, 45)]
    assert verify_audit(register).ok

    again, _ = load(register, path, workers=1)
    assert (again.stored, again.duplicates, again.rejected) == (0, 57, 3)
