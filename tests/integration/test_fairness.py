"""The fairness report on a six-person register, each figure worked out by hand.

Worked policy (tests/factories.py): base 1000; A >= 1050, B >= 1000, C >= 900, D below.
Adverse = on `dishonest` (black) or under `hr.no_promotion` / `tax.strict` (sanctions).

As of 2026-03-15 (TODAY):
  s-001 Tax Bureau / Clerk      defiance -100        900 C  dishonest, hr.no_promotion  adverse
  s-002 Tax Bureau / Clerk      tax arrears -60      940 C  tax.strict                  adverse
  s-003 Tax Bureau / Inspector  volunteering +60    1060 A  exemplary
  s-004 Court / Clerk           nothing             1000 B
  s-005 Court / Judge           commendation +40    1040 B  (ends 2026-04-01)
  s-006 (none), organisation    tax arrears -60      940 C  tax.strict (ends 2026-06-01)  adverse
Overall 3 of 6 adverse (0.5). Tax Bureau 2/3: ratio 4/3 > 1.25, flagged; (none) 1/1: ratio 2.
As of 2026-07-01 s-005 and s-006 are back at 1000 B: overall 2 of 6; Tax Bureau ratio 2.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from credo.cli import app
from credo.domain.errors import ValidationError
from credo.services.fairness import fairness_report
from credo.services.register import Register
from credo.services.rescoring import rescore_everyone
from credo.services.subjects import import_subjects
from credo.store.tables import audit_entries, notices, standings
from tests.factories import file_rows, record, rows, seed_register, subject

PEOPLE = [
    subject(1),
    subject(2),
    subject(3, position="Inspector"),
    subject(4, organisation="Court"),
    subject(5, organisation="Court", position="Judge"),
    subject(6, organisation="", position="", kind="organisation"),
]


def small_register(register: Register) -> None:
    seed_register(register, subjects=0)
    import_subjects(register, rows(PEOPLE), actor="test", source="people")
    file_rows(
        register, "city-court", [record("C-1", "s-001", "court.order_defiance", "2026-01-10")]
    )
    file_rows(
        register,
        "city-tax",
        [
            record("T-1", "s-002", "tax.arrears", "2026-01-01"),
            record("T-2", "s-006", "tax.arrears", "2025-06-01"),
        ],
    )
    file_rows(
        register,
        "city-civil",
        [
            record(f"V-{n}", "s-003", "civic.volunteering", d)
            for n, d in enumerate(["2026-01-05", "2026-02-01", "2026-03-01"])
        ],
    )
    file_rows(
        register,
        "city-personnel",
        [record("P-1", "s-005", "employment.commendation", "2026-03-01")],
    )


@pytest.fixture
def small(register: Register) -> Register:
    small_register(register)
    return register


def test_stored_standings_by_organisation(small: Register) -> None:
    result = fairness_report(small, by="organisation")
    assert (result.as_of, result.source) == (date(2026, 3, 15), "stored")
    report = result.report
    assert [(g.group, g.subjects) for g in report.groups] == [
        ("Court", 2),
        ("Tax Bureau", 3),
        ("(none)", 1),
    ]
    tax, court, none = report.group("Tax Bureau"), report.group("Court"), report.group("(none)")
    assert tax.mean_score == pytest.approx(2900 / 3)
    assert tax.median_score == 940.0
    assert (court.mean_score, court.median_score) == (1020.0, 1020.0)
    assert (report.overall.mean_score, report.overall.median_score) == (980.0, 970.0)
    assert tax.grades == pytest.approx({"A": 1 / 3, "B": 0.0, "C": 2 / 3, "D": 0.0})
    assert tax.lists == pytest.approx({"dishonest": 1 / 3, "exemplary": 1 / 3})
    assert tax.measures == pytest.approx({"hr.no_promotion": 1 / 3, "tax.strict": 1 / 3})
    assert none.measures == {"hr.no_promotion": 0.0, "tax.strict": 1.0}
    assert report.overall.adverse_rate == 0.5
    assert tax.ratio == pytest.approx(4 / 3)
    assert court.ratio == 0.0
    assert none.ratio == 2.0
    assert report.flagged == ["Tax Bureau", "(none)"]


def test_by_position_and_by_kind(small: Register) -> None:
    position = fairness_report(small, by="position").report
    assert [(g.group, g.subjects, g.adverse) for g in position.groups] == [
        ("Clerk", 3, 2),
        ("Inspector", 1, 0),
        ("Judge", 1, 0),
        ("(none)", 1, 1),
    ]
    assert position.flagged == ["Clerk", "(none)"]
    kind = fairness_report(small, by="kind").report
    assert [(g.group, g.subjects, g.ratio) for g in kind.groups] == [
        ("organisation", 1, 2.0),
        ("person", 5, pytest.approx(0.8)),
    ]
    assert kind.flagged == ["organisation"]


def test_another_day_is_scored_set_based_and_nothing_is_stored(small: Register) -> None:
    def counts() -> tuple[int, ...]:
        with small.read() as conn:
            return tuple(
                conn.execute(select(func.count()).select_from(t)).scalar_one()
                for t in (standings, notices, audit_entries)
            ) + tuple(conn.execute(select(standings.c.as_of).distinct()).scalars())

    before = counts()
    result = fairness_report(small, by="organisation", as_of=date(2026, 7, 1))
    assert (result.as_of, result.source) == (date(2026, 7, 1), "computed")
    report = result.report
    assert report.overall.adverse_rate == pytest.approx(1 / 3)
    assert report.overall.mean_score == pytest.approx(5900 / 6)
    assert report.group("Tax Bureau").ratio == pytest.approx(2.0)
    assert report.group("Court").grades["B"] == 1.0
    assert report.group("(none)").adverse == 0
    assert report.flagged == ["Tax Bureau"]
    assert counts() == before
    # the same day from stored standings gives the same report
    rescore_everyone(small, date(2026, 7, 1))
    stored = fairness_report(small, by="organisation", as_of=date(2026, 7, 1))
    assert stored.source == "stored"
    assert stored.report == report


def test_threshold_is_configurable_and_checked(small: Register) -> None:
    lenient = fairness_report(small, by="organisation", threshold=0.5)  # limit 2.0
    assert lenient.report.flagged == []
    with pytest.raises(ValidationError) as caught:
        fairness_report(small, by="organisation", threshold=2)
    assert caught.value.problems[0].location == "threshold"
    with pytest.raises(ValidationError) as grouping:
        fairness_report(small, by="religion")
    assert grouping.value.problems[0].location == "by"


def test_cli_fairness_report(tmp_path: Path) -> None:
    from credo.bootstrap import build_register
    from credo.clock import FixedDateClock
    from credo.settings import Settings

    home = tmp_path / "home"
    reg = build_register(Settings(home=home), clock=FixedDateClock(date(2026, 3, 15)))
    small_register(reg)
    reg.engine.dispose()
    env = {"CREDO_HOME": str(home), "CREDO_TODAY": "2026-03-15", "CREDO_DATABASE_URL": None}
    runner = CliRunner()
    text = runner.invoke(app, ["report", "fairness"], env=env, catch_exceptions=False)
    assert text.exit_code == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0] == (
        "fairness by organisation as of 2026-03-15 (stored standings, policy worked@1)"
    )
    table = {line.split()[0]: line.split()[1:] for line in lines[3:8]}
    assert table["Tax"] == ["Bureau", "3", "966.7", "940.0", "66.7%", "1.33", "FLAG"]
    assert table["Court"] == ["2", "1020.0", "1020.0", "0.0%", "0.00"]
    assert table["(all)"] == ["6", "980.0", "970.0", "50.0%", "1.00"]
    assert lines[-1] == "flagged: Tax Bureau, (none)"
    data = json.loads(
        runner.invoke(
            app,
            ["report", "fairness", "--by", "position", "--as-of", "2026-07-01", "--json"],
            env=env,
        ).stdout
    )
    assert (data["as_of"], data["source"], data["by"]) == ("2026-07-01", "computed", "position")
    assert data["flagged"] == ["Clerk"]
    bad = runner.invoke(app, ["report", "fairness", "--threshold", "1.5"], env=env)
    assert bad.exit_code == 1
    assert "threshold" in bad.stderr
    usage = runner.invoke(app, ["report", "fairness", "--by", "religion"], env=env)
    assert usage.exit_code == 2
