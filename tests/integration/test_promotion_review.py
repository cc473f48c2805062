"""Promotion review: a slate checked by hand, through the service and the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text

from credo.domain.errors import PermissionDeniedError, ValidationError
from credo.services.promotion import Candidate, review_slate
from credo.services.register import Register
from tests.factories import WORKED_POLICY, file_rows, record, seed_register
from tests.integration.test_cli import Credo, records_csv, write, write_csv

# Integrity sees judicial, tax and employment records: volunteering (civic) does not count.
PROMOTION_POLICY = (
    WORKED_POLICY.replace('version = "1"', 'version = "promotion"')
    + """
[promotion]
weights = { performance = 0.6, integrity = 0.4 }
contexts = ["judicial", "tax", "employment"]
"""
)

SLATE = [("s-001", 90.0), ("s-002", 70.0), ("s-003", 60.0), ("s-004", 80.0), ("s-005", 70.0)]
# By hand (score range 0..2000, so integrity = score / 20):
#   s-001 court defiance 900 -> 45.00, on dishonest: hr.no_promotion blocks it
#   s-002 volunteering (civic, not seen) 1000 -> 50.00; 0.6*70 + 0.4*50 = 62.00
#   s-003 commendation 1040 -> 52.00; 0.6*60 + 0.4*52 = 56.80
#   s-004 tax arrears 940 -> 47.00; 0.6*80 + 0.4*47 = 66.80
#   s-005 nothing 1000 -> 50.00; 62.00, tied with s-002: s-002 ranks first
EXPECTED = [
    ("s-004", 1, 47.0, 66.8, True),
    ("s-002", 2, 50.0, 62.0, True),
    ("s-005", 3, 50.0, 62.0, True),
    ("s-003", 4, 52.0, 56.8, True),
    ("s-001", None, 45.0, 72.0, False),
]
RECORDS = {
    "city-court": [("EX-1", "s-001", "court.order_defiance", "2026-01-10")],
    "city-civil": [(f"V-{n}", "s-002", "civic.volunteering", "2026-02-01") for n in range(3)],
    "city-personnel": [("C-1", "s-003", "employment.commendation", "2026-03-01")],
    "city-tax": [("T-1", "s-004", "tax.arrears", "2026-03-01")],
}


@pytest.fixture
def slate_register(register: Register) -> Register:
    seed_register(register, subjects=5, policy=PROMOTION_POLICY)
    for authority, items in RECORDS.items():
        file_rows(register, authority, [record(*item) for item in items])
    return register


def test_a_slate_is_ranked_as_computed_by_hand(slate_register: Register) -> None:
    result = review_slate(
        slate_register,
        [Candidate(s, p, f"candidates[{n}]") for n, (s, p) in enumerate(SLATE)],
        authority_id="city-personnel",
    )
    got = [
        (c["subject_id"], c["rank"], c["integrity"], c["combined"], c["eligible"])
        for c in result["candidates"]
    ]
    assert got == EXPECTED
    blocked = result["candidates"][-1]
    assert blocked["blocked_by"] == [
        {"measure": "hr.no_promotion", "text": "Not eligible for promotion while listed"}
    ]
    assert [line["reference"] for line in blocked["explanation"]] == ["EX-1"]
    assert result["candidates"][1]["explanation"] == []  # volunteering is not seen
    with slate_register.engine.connect() as conn:
        logged = conn.execute(
            text("SELECT subject_id, purpose, authority_id FROM inquiries ORDER BY id")
        ).fetchall()
    assert [tuple(r) for r in logged] == [
        (s, "promotion-review", "city-personnel") for s, _ in SLATE
    ]


def test_a_wrong_slate_is_refused_whole_and_logs_nothing(slate_register: Register) -> None:
    bad = [
        Candidate("s-001", 50, "line 2"),
        Candidate("s-001", 50, "line 3"),
        Candidate("s-002", 101, "line 4"),
        Candidate("s-404", 50, "line 5"),
    ]
    with pytest.raises(ValidationError) as refused:
        review_slate(slate_register, bad, authority_id="city-personnel")
    assert [p.location for p in refused.value.problems] == [
        "line 3.subject_id",
        "line 4.performance",
    ]
    with pytest.raises(ValidationError) as unknown:
        review_slate(
            slate_register, [Candidate("s-404", 50, "line 2")], authority_id="city-personnel"
        )
    assert [p.location for p in unknown.value.problems] == ["line 2.subject_id"]
    with pytest.raises(PermissionDeniedError, match="promotion-review"):
        review_slate(slate_register, [Candidate("s-001", 50, "x")], authority_id="city-tax")
    with slate_register.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM inquiries")).scalar_one() == 0


def test_the_command_prints_a_table_json_and_csv(tmp_path: Path) -> None:
    credo = Credo(tmp_path / "home")
    policy = write(tmp_path / "policy.toml", PROMOTION_POLICY)
    assert credo("init", "--policy", str(policy)).exit_code == 0
    people = write_csv(
        tmp_path / "people.csv",
        ["subject_id", "name"],
        [[f"s-00{n}", f"Person {n}"] for n in range(1, 6)],
    )
    assert credo("subjects", "import", str(people)).exit_code == 0
    for authority, items in RECORDS.items():
        path = records_csv(tmp_path / f"{authority}.csv", items)
        assert credo("import", str(path), "--authority", authority).exit_code == 0, authority
    slate = write_csv(
        tmp_path / "slate.csv", ["subject_id", "performance"], [[s, f"{p:g}"] for s, p in SLATE]
    )
    table = credo("promotion", "review", str(slate), "--authority", "city-personnel")
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert lines[1].split() == [
        "rank",
        "subject_id",
        "performance",
        "integrity",
        "combined",
        "eligible",
        "blocked_by",
    ]
    assert lines[2].split() == ["1", "s-004", "80", "47.00", "66.80", "yes", "-"]
    assert lines[-1].split() == ["-", "s-001", "90", "45.00", "72.00", "no", "hr.no_promotion"]
    as_json = credo("promotion", "review", str(slate), "--authority", "city-personnel", "--json")
    ranked = [(c["subject_id"], c["rank"]) for c in json.loads(as_json.stdout)["candidates"]]
    assert ranked == [(s, r) for s, r, *_ in EXPECTED]
    as_csv = credo("promotion", "review", str(slate), "--authority", "city-personnel", "--csv")
    assert as_csv.stdout.splitlines()[3] == "3,s-005,70,50.00,62.00,yes,-"
    broken = write(tmp_path / "broken.csv", "subject_id,performance\ns-001,high\n")
    refused = credo("promotion", "review", str(broken), "--authority", "city-personnel")
    assert refused.exit_code == 1
    assert "line 2.performance" in refused.stderr
