"""Registering subjects from real CSV and JSON Lines files, on both stores."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from credo.domain.errors import ValidationError
from credo.domain.subjects import SUBJECT_FIELDS
from credo.services.importing import ImportReport, Reject
from credo.services.policies import activate_policy
from credo.services.register import Register
from credo.services.sources import detect_format, read_rows
from credo.services.subjects import import_subjects
from credo.store.tables import audit_entries, standings, subjects
from tests.conftest import TODAY
from tests.factories import WORKED_POLICY

COLUMNS = ["subject_id", "name", "kind", "organisation", "position", "email"]


def write_file(path: Path, items: list[dict[str, Any]], columns: list[str] = COLUMNS) -> Path:
    """Write items as CSV (header first) or JSON Lines, by the file's suffix."""
    if path.suffix == ".csv":
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            for item in items:
                writer.writerow([item.get(c, "") for c in columns])
    else:
        path.write_text("".join(json.dumps(item) + "\n" for item in items), encoding="utf-8")
    return path


def import_file(register: Register, path: Path) -> tuple[ImportReport, dict[int, Reject]]:
    """Import a subjects file as `credo subjects import FILE` does; rejects keyed by line."""
    rejects: dict[int, Reject] = {}

    def keep(reject: Reject) -> None:
        assert reject.line not in rejects
        rejects[reject.line] = reject

    with path.open("rb") as stream:
        report = import_subjects(
            register,
            read_rows(stream, detect_format(path), SUBJECT_FIELDS),
            actor="test",
            source=path.name,
            on_reject=keep,
        )
    assert report.rejected == len(rejects)
    return report, rejects


def stored(register: Register) -> dict[str, Any]:
    with register.read() as conn:
        return {row.id: row for row in conn.execute(select(subjects))}


def first_line(suffix: str) -> int:
    return 2 if suffix == "csv" else 1


GOOD = [
    {
        "subject_id": "s-001",
        "name": "Li Wei",
        "organisation": "Tax Bureau",
        "position": "Clerk",
        "email": "li.wei@example.org",
    },
    {"subject_id": "org:acme.42", "name": "Acme Ltd", "kind": "organisation"},
    {"subject_id": "s-003", "name": "  Zhang San  ", "kind": "person"},
]
# (row, the field its reason must name)
BAD = [
    ({"subject_id": "s-101", "name": ""}, "name"),
    ({"subject_id": "s-102", "name": "   "}, "name"),
    ({"subject_id": "s-103", "name": "Bad Mail", "email": "not-an-email"}, "email"),
    ({"subject_id": "s-104", "name": "Bad Mail", "email": "a@b"}, "email"),
    ({"subject_id": "s-105", "name": "Bad Kind", "kind": "robot"}, "kind"),
    ({"subject_id": "s 106", "name": "Spaced Id"}, "subject_id"),
    ({"subject_id": "", "name": "No Id"}, "subject_id"),
    ({"subject_id": "-leading-dash", "name": "Dash"}, "subject_id"),
    ({"subject_id": "s-107", "name": "N" * 201}, "name"),
]


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_good_subjects_are_stored_and_bad_ones_rejected_with_line_and_field(
    register: Register, tmp_path: Path, suffix: str
) -> None:
    items = [GOOD[0], *(row for row, _ in BAD), GOOD[1], GOOD[2]]
    report, rejects = import_file(register, write_file(tmp_path / f"s.{suffix}", items))

    start = first_line(suffix)
    assert report.stored == 3
    assert set(rejects) == {start + 1 + n for n in range(len(BAD))}
    for n, (_, field) in enumerate(BAD):
        reject = rejects[start + 1 + n]
        assert field in [p.location for p in reject.problems], reject.reason
        assert field in reject.reason
    rows = stored(register)
    assert set(rows) == {"s-001", "org:acme.42", "s-003"}
    assert rows["s-001"].email == "li.wei@example.org"
    assert rows["s-001"].kind == "person"
    assert rows["org:acme.42"].kind == "organisation"
    assert rows["s-003"].name == "Zhang San"


def test_a_subjects_file_with_an_unknown_column_is_refused_whole(
    register: Register, tmp_path: Path
) -> None:
    path = write_file(tmp_path / "s.csv", [{**GOOD[0], "party": "x"}], [*COLUMNS, "party"])
    with pytest.raises(ValidationError) as caught:
        import_file(register, path)
    assert "party" in str(caught.value)
    assert stored(register) == {}


def test_a_jsonl_subject_with_an_unknown_field_is_rejected(
    register: Register, tmp_path: Path
) -> None:
    path = write_file(tmp_path / "s.jsonl", [GOOD[0], {**GOOD[1], "religion": "x"}])
    report, rejects = import_file(register, path)
    assert report.stored == 1
    assert set(rejects) == {2}
    assert "religion" in rejects[2].reason


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_reimporting_the_same_subjects_stores_nothing_twice(
    register: Register, tmp_path: Path, suffix: str
) -> None:
    path = write_file(tmp_path / f"s.{suffix}", [*GOOD, BAD[0][0]])
    first, _ = import_file(register, path)
    before = stored(register)
    with register.read() as conn:
        entries = conn.execute(select(func.count()).select_from(audit_entries)).scalar_one()

    again, rejects = import_file(register, path)

    assert (first.stored, first.duplicates, first.rejected) == (3, 0, 1)
    assert (again.stored, again.duplicates, again.rejected) == (0, 3, 1)
    assert len(rejects) == 1
    assert stored(register) == before
    with register.read() as conn:
        assert conn.execute(select(func.count()).select_from(audit_entries)).scalar_one() == entries


def test_the_same_id_with_other_details_is_refused(register: Register, tmp_path: Path) -> None:
    import_file(register, write_file(tmp_path / "a.csv", GOOD))
    changed = [
        {**GOOD[0], "position": "Director"},  # line 2
        {**GOOD[1], "kind": "person"},  # line 3
        GOOD[2],  # line 4: same details
        {"subject_id": "s-004", "name": "New One"},  # line 5
        {"subject_id": "s-004", "name": "New Two"},  # line 6: same id, same file
    ]
    report, rejects = import_file(register, write_file(tmp_path / "b.csv", changed))
    assert set(rejects) == {2, 3, 6}
    for reject in rejects.values():
        assert [p.location for p in reject.problems] == ["subject_id"]
        assert "other details" in reject.reason
    assert (report.stored, report.duplicates) == (1, 1)
    rows = stored(register)
    assert rows["s-001"].position == "Clerk"
    assert rows["org:acme.42"].kind == "organisation"
    assert rows["s-004"].name == "New One"


def test_subjects_registered_under_an_active_policy_get_a_base_standing(
    register: Register, tmp_path: Path
) -> None:
    activate_policy(register, WORKED_POLICY, actor="test", comment="test")
    report, _ = import_file(register, write_file(tmp_path / "s.csv", GOOD))
    assert report.stored == 3
    with register.read() as conn:
        rows = conn.execute(select(standings)).all()
    assert {r.subject_id for r in rows} == {"s-001", "org:acme.42", "s-003"}
    assert {(r.score, r.grade, r.lists, r.measures, r.as_of) for r in rows} == {
        (1000, "B", "", "", TODAY)
    }


def test_an_injection_string_as_a_name_is_stored_verbatim(
    register: Register, tmp_path: Path
) -> None:
    name = "Robert'); DROP TABLE subjects;-- <script>\" OR 1=1"
    report, rejects = import_file(
        register, write_file(tmp_path / "s.csv", [{"subject_id": "s-009", "name": name}])
    )
    assert rejects == {}
    assert report.stored == 1
    assert stored(register)["s-009"].name == name
