"""`credo simulate`: standings projected forward with no new records, on event days only.

Worked policy (tests/factories.py), from 2026-03-15 (TODAY):
  s-001  defiance 2026-01-10 and 2026-03-01 (P2Y, cap -200)  800 D, dishonest, hr.no_promotion
         2028-01-10: 900 C (still dishonest: a defiance counts); 2028-03-01: 1000 B, off the list
  s-002  tax arrears 2026-01-01 (P1Y)                          940 C, tax.strict; 2027-01-01: 1000 B
  s-003  commendation 2026-03-01 (P1M)                         1040 B; 2026-04-01: 1000 B
  s-004  tax arrears 2026-03-10, objected to on 2026-03-15     suspended while disputed: 1000 B
  s-005  no records                                            1000 B all along
Candidate (worked@2): tax arrears not suspended while disputed, so s-004 is at 940 C under
tax.strict until the objection falls due on 2026-04-14 (filed + P30D).
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from credo.cli import app
from credo.domain.errors import ValidationError
from credo.domain.policy_load import load_policy
from credo.domain.scoring import compute_standing
from credo.services.cases import object_to_record
from credo.services.register import Register
from credo.services.simulate import event_days, simulate
from credo.store.repository import record_facts
from credo.store.tables import audit_entries, notices, records, standings
from tests.factories import WORKED_POLICY, file_rows, record, seed_register

CANDIDATE = WORKED_POLICY.replace('version = "1"', 'version = "2"').replace(
    'points = -60\nvalid_for = "P1Y"',
    'points = -60\nvalid_for = "P1Y"\nsuspend_while_disputed = false',
)
START = date(2026, 3, 15)


def build(register: Register) -> None:
    seed_register(register, subjects=5)
    file_rows(
        register,
        "city-court",
        [
            record("C-1", "s-001", "court.order_defiance", "2026-01-10"),
            record("C-2", "s-001", "court.order_defiance", "2026-03-01"),
        ],
    )
    file_rows(
        register,
        "city-tax",
        [
            record("T-1", "s-002", "tax.arrears", "2026-01-01"),
            record("T-4", "s-004", "tax.arrears", "2026-03-10"),
        ],
    )
    file_rows(
        register,
        "city-personnel",
        [record("P-1", "s-003", "employment.commendation", "2026-03-01")],
    )
    with register.read() as conn:
        record_id = conn.execute(select(records.c.id).where(records.c.reference == "T-4")).scalar()
    object_to_record(register, "s-004", int(record_id), "The arrears were paid on time.")


@pytest.fixture
def built(register: Register) -> Register:
    build(register)
    return register


def stored_counts(register: Register) -> tuple[int, ...]:
    with register.read() as conn:
        return tuple(
            conn.execute(select(func.count()).select_from(t)).scalar_one()
            for t in (standings, notices, audit_entries)
        )


def test_projection_under_the_active_policy(built: Register) -> None:
    before = stored_counts(built)
    result = simulate(built, None, years=2)
    assert (result.policy, result.start, result.until) == ("worked@1", START, date(2028, 3, 15))
    assert result.subjects == 5
    data = result.to_json()
    assert data["lists"]["dishonest"] == {
        "now": 1,
        "at_end": 0,
        "left": {"2026": 0, "2027": 0, "2028": 1},
        "entered": {"2026": 0, "2027": 0, "2028": 0},
    }
    assert data["lists"]["exemplary"]["now"] == 0
    assert data["measures"]["hr.no_promotion"]["left"] == {"2026": 0, "2027": 0, "2028": 1}
    assert data["measures"]["tax.strict"]["now"] == 1
    assert data["measures"]["tax.strict"]["left"] == {"2026": 0, "2027": 1, "2028": 0}
    timelines = {t["subject_id"]: t for t in data["timelines"]}
    assert sorted(timelines) == ["s-001", "s-002", "s-003"]  # s-004 and s-005 never change
    assert timelines["s-001"]["now"] == {
        "score": 800,
        "grade": "D",
        "lists": ["dishonest"],
        "measures": ["hr.no_promotion"],
    }
    assert timelines["s-001"]["changes"] == [
        {
            "day": "2028-01-10",
            "score": 900,
            "grade": "C",
            "entered": [],
            "left": [],
            "measures_started": [],
            "measures_ended": [],
        },
        {
            "day": "2028-03-01",
            "score": 1000,
            "grade": "B",
            "entered": [],
            "left": ["dishonest"],
            "measures_started": [],
            "measures_ended": ["hr.no_promotion"],
        },
    ]
    assert [(c["day"], c["score"]) for c in timelines["s-002"]["changes"]] == [("2027-01-01", 1000)]
    assert timelines["s-002"]["changes"][0]["measures_ended"] == ["tax.strict"]
    assert [(c["day"], c["score"]) for c in timelines["s-003"]["changes"]] == [("2026-04-01", 1000)]
    assert stored_counts(built) == before  # nothing stored


def test_a_candidate_policy_lets_an_objection_fall_due(built: Register) -> None:
    result = simulate(built, CANDIDATE, years=1, period="month")
    assert result.policy == "worked@2"
    data = result.to_json()
    strict = data["measures"]["tax.strict"]
    assert strict["now"] == 2  # s-002 and s-004
    assert {k: v for k, v in strict["left"].items() if v} == {"2026-04": 1, "2027-01": 1}
    months = list(strict["left"])
    assert len(months) == 13 and (months[0], months[-1]) == ("2026-03", "2027-03")
    s004 = next(t for t in data["timelines"] if t["subject_id"] == "s-004")
    assert s004["now"]["score"] == 940
    assert [(c["day"], c["score"], c["measures_ended"]) for c in s004["changes"]] == [
        ("2026-04-14", 1000, ["tax.strict"])
    ]


def test_event_days_catch_every_change_a_daily_scan_finds(built: Register) -> None:
    for text in (WORKED_POLICY, CANDIDATE):
        policy = load_policy(text)
        until = date(2028, 3, 15)
        with built.read() as conn:
            facts = {s: record_facts(conn, s) for s in ("s-001", "s-002", "s-003", "s-004")}
        for subject_id, subject_facts in facts.items():
            daily, prev = [], compute_standing(policy, subject_id, subject_facts, START)
            day = START
            while day < until:
                day += timedelta(days=1)
                now = compute_standing(policy, subject_id, subject_facts, day)
                if (now.score, now.lists, now.measures) != (prev.score, prev.lists, prev.measures):
                    daily.append(day)
                prev = now
            events = event_days(policy, subject_facts, START, until)
            assert set(daily) <= set(events), (text[:40], subject_id)
    assert event_days(load_policy(WORKED_POLICY), facts["s-001"], START, until) == [
        date(2028, 1, 10),
        date(2028, 3, 1),
    ]


@pytest.mark.parametrize(
    ("years", "period", "field"),
    [(0, "year", "years"), (11, "year", "years"), (1, "week", "period")],
)
def test_out_of_range_arguments_are_refused_naming_them(
    built: Register, years: int, period: str, field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        simulate(built, None, years=years, period=period)
    assert [p.location for p in caught.value.problems] == [field]


def test_cli_simulate(tmp_path: Path) -> None:
    from credo.bootstrap import build_register
    from credo.clock import FixedDateClock
    from credo.settings import Settings

    home = tmp_path / "home"
    reg = build_register(Settings(home=home), clock=FixedDateClock(START))
    build(reg)
    reg.engine.dispose()
    env = {"CREDO_HOME": str(home), "CREDO_TODAY": "2026-03-15", "CREDO_DATABASE_URL": None}
    runner = CliRunner()
    result = runner.invoke(app, ["simulate", "--years", "2"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        "simulation under worked@1 from 2026-03-15 to 2028-03-15, no new records: "
        "5 subjects, 3 whose standing changes",
        "",
        "lists: members now, leaving in each year, joining, at the end",
        "list       now  2026  2027  2028  joining  at end",
        "dishonest    1     0     0     1        0       0",
        "exemplary    0     0     0     0        0       0",
        "",
        "measures: members now, ending in each year, joining, at the end",
        "measure          now  2026  2027  2028  joining  at end",
        "hr.no_promotion    1     0     0     1        0       0",
        "tax.strict         1     0     1     0        0       0",
    ]
    policy = tmp_path / "candidate.toml"
    policy.write_text(CANDIDATE, encoding="utf-8")
    as_json = runner.invoke(
        app,
        ["simulate", "--policy", str(policy), "--years", "1", "--from", "2026-04-01", "--json"],
        env=env,
    )
    data = json.loads(as_json.stdout)
    assert (data["policy"], data["from"], data["until"]) == ("worked@2", "2026-04-01", "2027-04-01")
    assert data["measures"]["tax.strict"]["left"] == {"2026": 1, "2027": 1}
    refused = runner.invoke(app, ["simulate", "--years", "20"], env=env)
    assert refused.exit_code == 1
    assert "years: must be 1 to 10" in refused.stderr
    assert runner.invoke(app, ["simulate"], env=env).exit_code == 2
    assert (
        runner.invoke(app, ["simulate", "--years", "1", "--from", "soon"], env=env).exit_code == 2
    )
