"""The `credo` command line (DESIGN 4.3) on an embedded register under a temporary CREDO_HOME."""

from __future__ import annotations

import csv
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from credo.cli import app
from tests.factories import WORKED_POLICY, example_policy

EXAMPLE = Path(__file__).resolve().parents[2] / "src" / "credo" / "data" / "example.toml"
STANDING_KEYS = [
    "subject_id",
    "as_of",
    "policy",
    "score",
    "grade",
    "lists",
    "measures",
    "explanation",
]
EXPLANATION_KEYS = ["authority", "reference", "category", "points", "effective_until", "capped"]
RECORD_COLUMNS = ["reference", "subject_id", "category", "decided_on", "legal_basis", "summary"]


class Credo:
    """Runs `credo ...` in-process with its own CREDO_HOME and a pinned clock."""

    def __init__(self, home: Path, today: str = "2026-03-15") -> None:
        self.home = home
        self.today = today
        self.runner = CliRunner()

    def __call__(self, *args: str, today: str | None = None) -> Result:
        env = {
            "CREDO_HOME": str(self.home),
            "CREDO_TODAY": today or self.today,
            "CREDO_DATABASE_URL": None,
        }
        return self.runner.invoke(app, list(args), env=env, catch_exceptions=False)


@pytest.fixture
def credo(tmp_path: Path) -> Credo:
    return Credo(tmp_path / "home")


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def write_csv(path: Path, columns: list[str], items: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(items)
    return path


def records_csv(path: Path, items: list[tuple[str, str, str, str]]) -> Path:
    """(reference, subject_id, category, decided_on) rows with a legal basis and summary."""
    return write_csv(
        path,
        RECORD_COLUMNS,
        [[ref, sid, cat, day, "Test Law art. 1", f"{cat} {ref}"] for ref, sid, cat, day in items],
    )


def subjects_csv(path: Path, ids: list[str]) -> Path:
    return write_csv(
        path,
        ["subject_id", "name", "organisation"],
        [[sid, f"Person {sid}", "Tax Bureau"] for sid in ids],
    )


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return result


def json_lines(result: Result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.fixture
def worked(credo: Credo, tmp_path: Path) -> Credo:
    """The DESIGN 5 worked example, filed through the command line."""
    ok(
        credo(
            "policy",
            "activate",
            "--comment",
            "test",
            str(write(tmp_path / "worked.toml", WORKED_POLICY)),
        )
    )
    ok(
        credo(
            "subjects",
            "import",
            str(subjects_csv(tmp_path / "people.csv", ["s-001", "s-002", "s-003"])),
        )
    )
    ok(
        credo(
            "import",
            str(
                records_csv(
                    tmp_path / "court.csv",
                    [
                        ("2026-EX-17", "s-001", "court.order_defiance", "2026-01-10"),
                        ("2026-EX-31", "s-001", "court.order_defiance", "2026-03-01"),
                    ],
                )
            ),
            "--authority",
            "city-court",
        )
    )
    ok(
        credo(
            "import",
            str(
                records_csv(
                    tmp_path / "tax.csv",
                    [
                        ("TAX-2025-7", "s-001", "tax.arrears", "2025-02-01"),
                    ],
                )
            ),
            "--authority",
            "city-tax",
        )
    )
    ok(
        credo(
            "import",
            str(
                records_csv(
                    tmp_path / "civil.csv",
                    [
                        ("VOL-88", "s-001", "civic.volunteering", "2026-02-01"),
                    ],
                )
            ),
            "--authority",
            "city-civil",
        )
    )
    return credo


# ----------------------------------------------------------------------------- policy


def test_policy_check_on_the_example_policy_prints_a_summary(credo: Credo) -> None:
    result = ok(credo("policy", "check", str(EXAMPLE)))
    assert result.stdout.splitlines()[0] == "policy example-city@2026.1: OK"
    assert "categories" in result.stdout and "grades" in result.stdout
    assert result.stderr == ""


def test_policy_check_names_the_table_entry_and_key_of_a_bad_file(
    credo: Credo, tmp_path: Path
) -> None:
    bad = WORKED_POLICY.replace("points = -60", 'points = "lots"').replace(
        'valid_for = "P2Y"', 'valid_for = "two years"'
    )
    result = credo("policy", "check", str(write(tmp_path / "bad.toml", bad)))
    assert result.exit_code == 1
    assert "categories[tax.arrears].points" in result.stderr
    assert "categories[court.order_defiance].valid_for" in result.stderr
    assert result.stdout == ""


def test_policy_check_on_a_missing_file_exits_1(credo: Credo, tmp_path: Path) -> None:
    result = credo("policy", "check", str(tmp_path / "nope.toml"))
    assert result.exit_code == 1
    assert "cannot read" in result.stderr


def test_policy_activate_then_again_is_a_no_op(credo: Credo, tmp_path: Path) -> None:
    path = write(tmp_path / "p.toml", example_policy())
    first = ok(credo("policy", "activate", "--comment", "test", str(path)))
    assert "example-city@2026.1 is active" in first.stdout
    again = ok(credo("policy", "activate", "--comment", "test", str(path)))
    assert "already active" in again.stdout
    changed = write(tmp_path / "q.toml", example_policy().replace("points = -100", "points = -90"))
    refused = credo("policy", "activate", "--comment", "test", str(changed))
    assert refused.exit_code == 1
    assert "different text" in refused.stderr


def test_policy_activate_refuses_a_bad_policy(credo: Credo, tmp_path: Path) -> None:
    result = credo(
        "policy",
        "activate",
        "--comment",
        "test",
        str(write(tmp_path / "p.toml", "[policy]\nid = 1\n")),
    )
    assert result.exit_code == 1
    assert "policy.id" in result.stderr


# ----------------------------------------------------------------------------- imports


def test_subjects_import_reports_rejects_and_is_idempotent(credo: Credo, tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "people.csv",
        ["subject_id", "name", "email"],
        [
            ["s-001", "Li Wei", "li@example.org"],
            ["s 002", "Spaced", ""],
            ["s-003", "", ""],
            ["s-004", "Wang Fang", "nope"],
            ["s-005", "Zhao Lei", ""],
        ],
    )
    first = credo("subjects", "import", str(path))
    assert first.exit_code == 1
    assert "2 stored, 0 already on file, 3 rejected" in first.stdout
    assert "line 3: subject_id" in first.stderr
    assert "line 4: name" in first.stderr
    assert "line 5: email" in first.stderr
    rejects = path.with_name("people.csv.rejects.csv")
    with rejects.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["line", "reason", "row"]
    assert [r[0] for r in rows[1:]] == ["3", "4", "5"]
    clean = write_csv(
        tmp_path / "clean.csv", ["subject_id", "name"], [["s-001", "Li Wei"], ["s-006", "Sun Mei"]]
    )
    second = credo("subjects", "import", str(clean))
    assert second.exit_code == 1  # s-001 is already registered with other details (email)
    assert "line 2: subject_id" in second.stderr
    third = ok(
        credo(
            "subjects",
            "import",
            str(write_csv(tmp_path / "again.csv", ["subject_id", "name"], [["s-006", "Sun Mei"]])),
        )
    )
    assert "0 stored, 1 already on file, 0 rejected" in third.stdout
    assert not (tmp_path / "again.csv.rejects.csv").exists()


def test_import_exits_1_with_line_numbers_and_writes_a_rejects_file(
    worked: Credo, tmp_path: Path
) -> None:
    path = records_csv(
        tmp_path / "more.csv",
        [
            ("M-1", "s-002", "court.order_defiance", "2026-02-01"),
            ("M-2", "s-404", "court.order_defiance", "2026-02-01"),
            ("M-3", "s-002", "tax.arrears", "2026-02-01"),
            ("M-4", "s-002", "court.order_defiance", "2026-03-16"),
            ("M-5", "s-003", "court.order_defiance", "15/03/2026"),
        ],
    )
    result = worked("import", str(path), "--authority", "city-court")
    assert result.exit_code == 1
    assert "1 stored, 0 already on file, 4 rejected" in result.stdout
    for line, field in ((3, "subject_id"), (4, "category"), (5, "decided_on"), (6, "decided_on")):
        assert f"line {line}: {field}" in result.stderr, result.stderr
    rejects = tmp_path / "more.csv.rejects.csv"
    assert rejects.exists()
    with rejects.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["line", "reason", "row"]
    assert sorted(int(r[0]) for r in rows[1:]) == [3, 4, 5, 6]
    by_line = {int(r[0]): r for r in rows[1:]}
    assert "s-404" in by_line[3][1] and "M-2" in by_line[3][2]
    # fixed: the rejects file of the earlier run goes away, the good row is not stored twice
    fixed = records_csv(
        tmp_path / "more.csv",
        [
            ("M-1", "s-002", "court.order_defiance", "2026-02-01"),
            ("M-5", "s-003", "court.order_defiance", "2026-03-15"),
        ],
    )
    again = ok(worked("import", str(fixed), "--authority", "city-court"))
    assert "1 stored, 1 already on file, 0 rejected" in again.stdout
    assert not rejects.exists()


def test_import_of_a_clean_file_exits_0_and_a_rerun_stores_nothing(
    worked: Credo, tmp_path: Path
) -> None:
    path = tmp_path / "clean.jsonl"
    path.write_text(
        json.dumps(
            {
                "reference": "J-1",
                "subject_id": "s-002",
                "category": "tax.arrears",
                "decided_on": "2026-01-02",
                "legal_basis": "Tax Law",
                "amount": 120,
            }
        )
        + "\n"
    )
    first = ok(worked("import", str(path), "--authority", "city-tax"))
    assert "1 stored, 0 already on file, 0 rejected" in first.stdout
    assert first.stderr == ""
    second = ok(worked("import", str(path), "--authority", "city-tax"))
    assert "0 stored, 1 already on file, 0 rejected" in second.stdout
    assert not (tmp_path / "clean.jsonl.rejects.csv").exists()


def test_import_refuses_an_authority_column_and_an_unknown_authority(
    worked: Credo, tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path / "a.csv",
        [*RECORD_COLUMNS, "authority"],
        [["A-1", "s-002", "court.order_defiance", "2026-01-02", "Law", "s", "city-court"]],
    )
    result = worked("import", str(path), "--authority", "city-court")
    assert result.exit_code == 1
    assert "authority" in result.stderr and "credentials" in result.stderr
    unknown = worked(
        "import",
        str(
            records_csv(
                tmp_path / "b.csv", [("B-1", "s-002", "court.order_defiance", "2026-01-02")]
            )
        ),
        "--authority",
        "city-zoo",
    )
    assert unknown.exit_code == 1
    assert "city-zoo" in unknown.stderr
    export = json.loads(ok(worked("export", "s-002")).stdout)
    assert export["records"] == []


def test_import_usage_errors_exit_2(worked: Credo, tmp_path: Path) -> None:
    path = records_csv(tmp_path / "c.csv", [("C-1", "s-002", "court.order_defiance", "2026-01-02")])
    assert worked("import", str(path)).exit_code == 2  # no --authority
    assert worked("import").exit_code == 2
    assert worked("import", str(path), "--authority", "city-court", "--bogus").exit_code == 2


# ----------------------------------------------------------------------------- standing


def test_the_worked_example_end_to_end(worked: Credo) -> None:
    result = ok(worked("standing", "s-001", "--as-of", "2026-03-15", "--json"))
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    data = json.loads(lines[0])
    assert list(data) == STANDING_KEYS
    assert data == {
        "subject_id": "s-001",
        "as_of": "2026-03-15",
        "policy": "worked@1",
        "score": 820,
        "grade": "D",
        "lists": ["dishonest"],
        "measures": ["hr.no_promotion"],
        "explanation": [
            {
                "authority": "city-court",
                "reference": "2026-EX-17",
                "category": "court.order_defiance",
                "points": -100,
                "effective_until": "2028-01-10",
                "capped": False,
            },
            {
                "authority": "city-civil",
                "reference": "VOL-88",
                "category": "civic.volunteering",
                "points": 20,
                "effective_until": "2027-02-01",
                "capped": False,
            },
            {
                "authority": "city-court",
                "reference": "2026-EX-31",
                "category": "court.order_defiance",
                "points": -100,
                "effective_until": "2028-03-01",
                "capped": False,
            },
        ],
    }
    for item in data["explanation"]:
        assert list(item) == EXPLANATION_KEYS

    later = json.loads(ok(worked("standing", "s-001", "--as-of", "2028-01-10", "--json")).stdout)
    assert (later["score"], later["grade"], later["lists"]) == (900, "C", ["dishonest"])
    assert [e["reference"] for e in later["explanation"]] == ["2026-EX-31"]
    assert later["as_of"] == "2028-01-10"

    before_tax_expiry = json.loads(
        ok(worked("standing", "s-001", "--as-of", "2026-01-31", "--json")).stdout
    )
    assert before_tax_expiry["score"] == 1000 - 100 - 60
    assert "tax.strict" in before_tax_expiry["measures"]


def test_standing_defaults_to_today_and_prints_one_object_per_subject(worked: Credo) -> None:
    result = ok(worked("standing", "s-001", "s-002", "s-003", "--json"))
    objects = json_lines(result)
    assert [o["subject_id"] for o in objects] == ["s-001", "s-002", "s-003"]
    assert all(list(o) == STANDING_KEYS for o in objects)
    assert objects[0]["as_of"] == "2026-03-15"
    assert objects[0]["score"] == 820
    assert objects[1] == {
        "subject_id": "s-002",
        "as_of": "2026-03-15",
        "policy": "worked@1",
        "score": 1000,
        "grade": "B",
        "lists": [],
        "measures": [],
        "explanation": [],
    }


def test_standing_without_json_is_readable(worked: Credo) -> None:
    result = ok(worked("standing", "s-001"))
    assert "score    820" in result.stdout
    assert "2026-EX-17" in result.stdout


def test_standing_errors(worked: Credo) -> None:
    unknown = worked("standing", "s-404", "--json")
    assert unknown.exit_code == 1
    assert "s-404" in unknown.stderr
    assert unknown.stdout == ""
    assert worked("standing", "s-001", "--as-of", "15/03/2026").exit_code == 2
    assert worked("standing", "s-001", "--as-of", "2026-02-30").exit_code == 2
    assert worked("standing").exit_code == 2


def test_standing_is_logged_as_an_inquiry(worked: Credo) -> None:
    ok(worked("standing", "s-002", "--as-of", "2026-01-01"))
    export = json.loads(ok(worked("export", "s-002")).stdout)
    assert [(q["as_of"], q["channel"]) for q in export["inquiries"]] == [("2026-01-01", "cli")]


# ----------------------------------------------------------------------------- the rest


def test_audit_verify_exits_0_on_an_intact_register(worked: Credo) -> None:
    ok(worked("standing", "s-001"))
    result = ok(worked("audit", "verify"))
    assert "audit chain intact" in result.stdout
    assert "4 records" in result.stdout and "3 subjects" in result.stdout


def test_audit_verify_exits_1_after_tampering(worked: Credo) -> None:
    import sqlite3

    db = sqlite3.connect(worked.home / "credo.sqlite3")
    with db:
        db.execute("UPDATE records SET summary = 'nothing' WHERE reference = '2026-EX-17'")
    db.close()
    result = worked("audit", "verify")
    assert result.exit_code == 1
    assert "2026-EX-17" in result.stderr


def test_export_prints_the_subjects_file(worked: Credo) -> None:
    data = json.loads(ok(worked("export", "s-001")).stdout)
    assert data["subject"]["subject_id"] == "s-001"
    assert data["subject"]["name"] == "Person s-001"
    assert sorted(r["reference"] for r in data["records"]) == [
        "2026-EX-17",
        "2026-EX-31",
        "TAX-2025-7",
        "VOL-88",
    ]
    by_ref = {r["reference"]: r for r in data["records"]}
    assert by_ref["2026-EX-17"]["authority"] == "city-court"
    assert by_ref["2026-EX-17"]["effective_until"] == "2028-01-10"
    assert by_ref["TAX-2025-7"]["effective_until"] == "2026-02-01"
    assert data["standing"]["score"] == 820
    assert worked("export", "s-404").exit_code == 1


def test_authority_add_key_prints_a_key_once(worked: Credo) -> None:
    first = ok(worked("authority", "add-key", "city-court"))
    second = ok(worked("authority", "add-key", "city-court"))
    keys = [first.stdout.strip(), second.stdout.strip()]
    assert all(len(r.stdout.splitlines()) == 1 for r in (first, second))
    assert all(k.startswith("credo_") for k in keys)
    assert keys[0] != keys[1]
    assert "cannot show it again" in first.stderr
    assert keys[0] not in (worked.home / "credo.sqlite3").read_bytes().decode("latin-1")
    unknown = worked("authority", "add-key", "city-zoo")
    assert unknown.exit_code == 1
    assert "city-zoo" in unknown.stderr


def test_rescore_as_of(worked: Credo) -> None:
    result = ok(worked("rescore", "--as-of", "2026-01-01"))
    assert result.stdout.strip() == "3 subjects rescored as of 2026-01-01"
    assert ok(worked("audit", "verify"))
    assert worked("rescore", "--as-of", "yesterday").exit_code == 2


def test_commands_before_any_policy_exit_1(credo: Credo, tmp_path: Path) -> None:
    ok(credo("subjects", "import", str(subjects_csv(tmp_path / "p.csv", ["s-001"]))))
    result = credo("standing", "s-001")
    assert result.exit_code == 1
    assert "policy activate" in result.stderr


# ----------------------------------------------------------------------------- a real process

CREDO_BIN = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "credo"


def run_credo(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`credo ...` as a real process whose stderr is a pipe, as in a script or a CI log."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CREDO_") and k not in ("COLUMNS", "LINES")
    }
    env.update({"CREDO_HOME": str(home), "CREDO_TODAY": "2026-03-15"})
    return subprocess.run(
        [str(CREDO_BIN), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_a_real_process_exits_with_the_documented_codes(worked: Credo, tmp_path: Path) -> None:
    standing = run_credo(worked.home, "standing", "s-001", "s-002", "--json")
    assert standing.returncode == 0, standing.stderr
    assert [json.loads(line)["score"] for line in standing.stdout.splitlines()] == [820, 1000]
    assert run_credo(worked.home, "standing", "s-001", "--as-of", "2026-13-01").returncode == 2


def test_policy_check_keeps_a_long_location_on_one_line(credo: Credo, tmp_path: Path) -> None:
    long_id = "court." + "x" * 58  # a valid 64-character category id
    bad = WORKED_POLICY.replace('"court.order_defiance"', f'"{long_id}"').replace(
        "points = -100", 'points = "lots"'
    )
    result = run_credo(credo.home, "policy", "check", str(write(tmp_path / "bad.toml", bad)))
    assert result.returncode == 1
    assert f"categories[{long_id}].points" in result.stderr, result.stderr


def test_import_prints_each_reject_on_one_line(worked: Credo, tmp_path: Path) -> None:
    path = records_csv(
        tmp_path / "court.csv",
        [
            ("2026-EX-17", "s-001", "court.order_defiance", "2026-01-11"),  # other content
        ],
    )
    result = run_credo(worked.home, "import", str(path), "--authority", "city-court")
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert any(
        line.startswith("line 2: reference: '2026-EX-17' is already filed")
        and line.endswith("not a new filing")
        for line in lines
    ), result.stderr
    assert f"rejected rows written to {path}.rejects.csv" in lines, result.stderr
