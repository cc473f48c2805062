"""The impact preview predicts activation exactly, and changes nothing stored.

The register holds what makes prediction hard: repaired records (the repair date caps the
recomputed end), open, overdue and decided objections (due days move with the objection
period), a correction, a revocation, capped categories, a list that excludes another and
measures restricted to their contexts. A changed policy is previewed, then activated; every
subject's stored standing must equal the preview's "after" side, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import itertools
import json
import os
import random
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pytest
from sqlalchemy import select, text
from typer.testing import CliRunner, Result

from credo.cli import app
from credo.clock import FixedDateClock
from credo.domain.errors import ConflictError, NoActivePolicyError, PolicyError
from credo.domain.fairness import FairnessRow, fairness
from credo.domain.policy_load import load_policy
from credo.services import importing, preview_snapshot
from credo.services.cases import decide_case, object_to_record, request_repair
from credo.services.filing import subject_standing
from credo.services.importing import Reject
from credo.services.inquiries import Inquiry, write_inquiries
from credo.services.policies import activate_policy
from credo.services.preview import Engine, preview_policy, preview_standings
from credo.services.preview_snapshot import keep_snapshot
from credo.services.register import Register
from credo.services.rescoring import rescore_everyone
from credo.services.subjects import import_subjects
from credo.store import audit, preview_duckdb, preview_source
from credo.store.tables import cases, records
from tests.conftest import TODAY
from tests.factories import file_rows, record, rows, subject

BASE = """
[policy]
id = "preview"
version = "1"
base_score = 1000
score_min = 0
score_max = 2000
objection_period = "P10D"

[[grades]]
name = "A"
min = 1050
[[grades]]
name = "B"
min = 1000
[[grades]]
name = "C"
min = 900
[[grades]]
name = "D"
min = 0

[[authorities]]
id = "court"
name = "Court"
may_file = ["judicial"]
[[authorities]]
id = "tax"
name = "Tax Bureau"
may_file = ["tax"]
[[authorities]]
id = "personnel"
name = "Personnel Bureau"
may_file = ["employment", "civic"]

[[categories]]
id = "court.defiance"
name = "Defied a court order"
context = "judicial"
points = -100
valid_for = "P2Y"
cap = -200
repairable = true
[[categories]]
id = "court.minor"
name = "Minor procedural breach"
context = "judicial"
points = -30
valid_for = "P1Y"
repairable = true
suspend_while_disputed = false
[[categories]]
id = "tax.arrears"
name = "Tax arrears"
context = "tax"
points = -60
valid_for = "P1Y"
repairable = true
suspend_while_disputed = false
[[categories]]
id = "employment.commendation"
name = "Commendation"
context = "employment"
points = 40
valid_for = "P6M"
cap = 80
[[categories]]
id = "civic.volunteering"
name = "Volunteering"
context = "civic"
points = 15
valid_for = "P1Y"

[[lists]]
id = "dishonest"
kind = "black"
name = "Dishonest persons"
when = [ { any_of = ["court.defiance"] }, { grade_in = ["D"] } ]
[[lists]]
id = "exemplary"
kind = "red"
name = "Exemplary public servants"
when = [ { grade_in = ["A"] } ]
excludes = ["dishonest"]

[[measures]]
id = "hr.no_promotion"
authority = "personnel"
kind = "sanction"
trigger = { list = "dishonest" }
contexts = ["judicial", "employment"]
text = "Not eligible for promotion while listed"
[[measures]]
id = "tax.strict"
authority = "tax"
kind = "sanction"
trigger = { grade_in = ["C", "D"] }
contexts = ["tax"]
text = "Strict tax supervision"
[[measures]]
id = "hr.fast_track"
authority = "personnel"
kind = "reward"
trigger = { list = "exemplary" }
contexts = ["employment", "civic"]
text = "Fast-track promotion review"
"""

# Every kind of change activation handles: points, caps, validity (longer and shorter,
# with and without repairs), the objection period, grade bands, list rules and a measure's
# contexts; plus a category whose validity is unchanged.
CANDIDATE = (
    BASE.replace('version = "1"', 'version = "2"', 1)
    .replace('objection_period = "P10D"', 'objection_period = "P30D"', 1)
    .replace(
        'points = -100\nvalid_for = "P2Y"\ncap = -200',
        'points = -150\nvalid_for = "P1Y"\ncap = -250',
    )
    .replace('points = -30\nvalid_for = "P1Y"', 'points = -40\nvalid_for = "P18M"')
    .replace('points = -60\nvalid_for = "P1Y"', 'points = -60\nvalid_for = "P2Y"')
    .replace("cap = 80", "cap = 40")
    .replace("min = 900", "min = 950")
    .replace('when = [ { grade_in = ["A"] } ]', 'when = [ { grade_in = ["A", "B"] } ]')
    .replace('contexts = ["employment", "civic"]', 'contexts = ["employment"]')
)

AUTHORITY = {
    "court.defiance": "court",
    "court.minor": "court",
    "tax.arrears": "tax",
    "employment.commendation": "personnel",
    "civic.volunteering": "personnel",
}
Row = tuple[int, str, str, str]


def d(value: str) -> date:
    return date.fromisoformat(value)


def file(register: Register, ref: str, sid: str, category: str, decided: str) -> int:
    report = file_rows(register, AUTHORITY[category], [record(ref, sid, category, decided)])
    assert report.stored == 1, report.first_rejects
    with register.read() as conn:
        return int(
            conn.execute(
                select(records.c.id).where(records.c.reference == ref, records.c.version == 1)
            ).scalar_one()
        )


def stored(register: Register) -> dict[str, Row]:
    with register.read() as conn:
        return {
            r.subject_id: (r.score, r.grade, r.lists, r.measures)
            for r in conn.execute(
                text("SELECT subject_id, score, grade, lists, measures FROM standings")
            )
        }


def everything(register: Register) -> tuple[Any, ...]:
    """Every table a preview could touch."""
    with register.read() as conn:
        tables = [
            conn.execute(text(f"SELECT * FROM {name} ORDER BY 1")).all()
            for name in ("records", "cases", "standings", "policy_versions", "audit_entries")
        ]
        return (*tables, conn.execute(text("SELECT COUNT(*) FROM notices")).scalar_one())


def build(register: Register, clock: FixedDateClock) -> None:
    """A register with every due-process path that moves end and due days."""
    activate_policy(register, BASE, actor="test", comment="base")
    import_subjects(
        register,
        rows(subject(n, organisation=f"Org {n % 3}") for n in range(1, 61)),
        actor="test",
        source="seed",
    )
    clock.day = d("2025-01-01")
    # s-001: repaired defiance; the shorter candidate validity ends it before the repair.
    repaired = file(register, "R-1", "s-001", "court.defiance", "2024-12-01")
    # s-002: arrears repaired in the past; the longer candidate validity stays capped by it.
    arrears = file(register, "R-2", "s-002", "tax.arrears", "2024-12-20")
    clock.day = d("2025-06-01")
    for sid, record_id, repair_on in (
        ("s-001", repaired, d("2026-09-01")),
        ("s-002", arrears, d("2025-07-01")),
    ):
        case_id = request_repair(register, sid, record_id, "Complied.")
        decide_case(
            register, case_id, reviewer="rev", outcome="approve", reasons="OK.", repair_on=repair_on
        )
    # s-003: an open objection on a non-suspending category, overdue under P10D only.
    clock.day = d("2026-03-01")
    minor = file(register, "O-1", "s-003", "court.minor", "2026-02-01")
    object_to_record(register, "s-003", minor, "Wrong person.")
    # s-004: an open objection on a suspending category (suspended whatever the period).
    defiance = file(register, "O-2", "s-004", "court.defiance", "2026-02-10")
    object_to_record(register, "s-004", defiance, "Not me.")
    # s-005: a decided (rejected) objection; s-006: a correction; s-007: a revocation.
    rejected = file(register, "O-3", "s-005", "tax.arrears", "2025-11-01")
    corrected = file(register, "O-4", "s-006", "court.defiance", "2025-09-01")
    revoked = file(register, "O-5", "s-007", "court.defiance", "2025-10-01")
    cases_ = [
        object_to_record(register, s, r, "Dispute.")
        for s, r in (("s-005", rejected), ("s-006", corrected), ("s-007", revoked))
    ]
    clock.day = d("2026-03-05")
    decide_case(register, cases_[0], reviewer="rev", outcome="reject", reasons="Proven.")
    decide_case(
        register,
        cases_[1],
        reviewer="rev",
        outcome="correct",
        reasons="A minor breach.",
        changes={"category": "court.minor"},
    )
    decide_case(register, cases_[2], reviewer="rev", outcome="revoke", reasons="Wrong.")
    # Everyone else: seeded random records, hitting caps and both lists.
    # One import per authority: the same rows as one filing each, in far fewer transactions.
    rng = random.Random(5)
    clock.day = TODAY
    n = 0
    by_authority: dict[str, list[dict[str, Any]]] = {}
    for sid_n in range(8, 61):
        for _ in range(rng.randrange(0, 6)):
            n += 1
            category = rng.choice(sorted(AUTHORITY))
            decided = date.fromordinal(TODAY.toordinal() - rng.randrange(0, 900))
            by_authority.setdefault(AUTHORITY[category], []).append(
                record(f"X-{n}", f"s-{sid_n:03d}", category, decided.isoformat())
            )
    for authority, items in sorted(by_authority.items()):
        assert file_rows(register, authority, items).stored == len(items)
    rescore_everyone(register, TODAY, actor="test")


@pytest.fixture
def built(register: Register, clock: FixedDateClock) -> Register:
    build(register, clock)
    return register


def test_preview_predicts_every_activated_standing_exactly(built: Register) -> None:
    reg = built
    before = stored(reg)
    sides = preview_standings(reg, CANDIDATE, engine=Engine.DATABASE)
    columnar = preview_standings(reg, CANDIDATE, engine=Engine.DUCKDB)
    report = preview_policy(reg, CANDIDATE, engine=Engine.DATABASE)
    in_duckdb = preview_policy(reg, CANDIDATE, engine=Engine.DUCKDB)
    assert {sid: b for sid, (b, _) in sides.items()} == before
    assert columnar == sides
    assert _without_engine_note(in_duckdb.to_json()) == report.to_json()
    activate_policy(reg, CANDIDATE, actor="test", comment="go")
    after = stored(reg)
    predicted = {sid: a for sid, (_, a) in sides.items()}
    assert predicted == after
    # the register really changes, in each way the candidate can change it
    assert before != after
    assert before["s-001"][0] == 900 and after["s-001"][0] == 1000  # P1Y ends it first
    assert after["s-002"][0] == 1000  # the repair still caps the longer validity
    assert before["s-003"][0] == 1000 and after["s-003"][0] == 960  # no longer overdue
    # the report's aggregates are those of the activation's outcome
    matrix = Counter((before[s][1], after[s][1]) for s in after)
    assert {(b, a): n for b, row in report.grade_matrix.items() for a, n in row.items()} == matrix
    assert report.subjects == len(after) == 60
    assert report.grade_changed == sum(1 for s in after if before[s][1] != after[s][1])
    assert report.score_changed == sum(1 for s in after if before[s][0] != after[s][0])
    for change in report.lists:
        entered = sorted(s for s in after if _on(change.id, after[s][2], before[s][2]))
        left = sorted(s for s in after if _on(change.id, before[s][2], after[s][2]))
        assert (change.entered, change.left) == (entered, left)
    for change in report.measures:
        started = sorted(s for s in after if _on(change.id, after[s][3], before[s][3]))
        stopped = sorted(s for s in after if _on(change.id, before[s][3], after[s][3]))
        assert (change.entered, change.left) == (started, stopped)
    assert sum(len(c.entered) + len(c.left) for c in report.lists) > 0
    assert sum(b.before for b in report.histogram) == sum(b.after for b in report.histogram) == 60
    for bin_ in report.histogram:
        assert bin_.before == sum(1 for s in before.values() if bin_.low <= s[0] <= bin_.high)
        assert bin_.after == sum(1 for s in after.values() if bin_.low <= s[0] <= bin_.high)
    # fairness by organisation, as the fairness report computes it on either register
    assert report.fairness is not None
    for side, policy, standings_ in (("before", BASE, before), ("after", CANDIDATE, after)):
        expected = fairness(
            [
                FairnessRow(s, f"Org {int(s[2:]) % 3}", r[0], r[1], _t(r[2]), _t(r[3]))
                for s, r in standings_.items()
            ],
            load_policy(policy),
            by="organisation",
        )
        assert report.fairness["flagged"][side] == expected.flagged
        for group in report.fairness["groups"]:
            figures = expected.group(group["group"])
            assert group["subjects"] == figures.subjects == 20
            assert group["ratio"][side] == figures.ratio
            assert group["adverse_rate"][side] == figures.adverse_rate
    assert {g["group"] for g in report.fairness["groups"]} == {"Org 0", "Org 1", "Org 2"}


def _t(value: str) -> tuple[str, ...]:
    return tuple(v for v in value.split(",") if v)


def _without_engine_note(data: dict[str, Any]) -> dict[str, Any]:
    notes = [n for n in data["notes"] if not n.startswith("scored by DuckDB")]
    assert len(notes) == len(data["notes"]) - 1
    return {**data, "notes": notes}


def _on(ident: str, lists: str, other: str) -> bool:
    return ident in lists.split(",") and ident not in other.split(",")


# A candidate that judges by other ids: a measure gone, a new list with a measure of its
# own and a measure on grades that are not neighbours. DuckDB numbers both policies' ids in
# one mask (preview_sql.numbering); past 62 ids it falls back to names (MANY).
RENAMED = (
    BASE.replace('version = "1"', 'version = "3"', 1).replace(
        'id = "hr.fast_track"\nauthority = "personnel"\nkind = "reward"\n'
        'trigger = { list = "exemplary" }\ncontexts = ["employment", "civic"]\n'
        'text = "Fast-track promotion review"',
        'id = "civic.honour"\nauthority = "personnel"\nkind = "reward"\n'
        'trigger = { grade_in = ["A", "C"] }\ncontexts = ["judicial", "civic"]\n'
        'text = "Civic honour roll"',
    )
    + """
[[lists]]
id = "watch"
kind = "black"
name = "Under watch"
when = [ { grade_in = ["C"] } ]

[[measures]]
id = "tax.audit"
authority = "tax"
kind = "sanction"
trigger = { list = "watch" }
contexts = ["tax"]
text = "Yearly tax audit"
"""
)
MANY = BASE.replace('version = "1"', 'version = "4"', 1) + "".join(
    f"""
[[measures]]
id = "tax.m{n}"
authority = "tax"
kind = "sanction"
trigger = {{ grade_in = ["{grade}"] }}
contexts = ["tax"]
text = "Measure {n}"
"""
    for n, grade in zip(range(61), itertools.cycle("ABCD"), strict=False)
)


@pytest.mark.parametrize("candidate", [RENAMED, MANY], ids=["renamed", "many-measures"])
def test_a_candidate_with_other_lists_and_measures_is_previewed_as_activation_stores_it(
    built: Register, candidate: str
) -> None:
    reg = built
    sides = preview_standings(reg, candidate, engine=Engine.DATABASE)
    assert preview_standings(reg, candidate, engine=Engine.DUCKDB) == sides
    report = preview_policy(reg, candidate, engine=Engine.DATABASE)
    in_duckdb = preview_policy(reg, candidate, engine=Engine.DUCKDB)
    assert _without_engine_note(in_duckdb.to_json()) == report.to_json()
    activate_policy(reg, candidate, actor="test", comment="go")
    assert {sid: a for sid, (_, a) in sides.items()} == stored(reg)
    measures = Counter(m for _, a in sides.values() for m in a[3].split(",") if m)
    lists = Counter(m for _, a in sides.values() for m in a[2].split(",") if m)
    if candidate is RENAMED:
        assert lists["watch"] > 0 and measures["tax.audit"] > 0 and measures["civic.honour"] > 0
        assert "hr.fast_track" in {c.id for c in report.measures}  # stops for everyone
    else:
        assert len(load_policy(candidate).measures) > 62 and measures["tax.m57"] > 0  # grade B


def test_preview_changes_nothing_stored(built: Register) -> None:
    state = everything(built)
    preview_policy(built, CANDIDATE)
    preview_policy(built, CANDIDATE, as_of=d("2027-01-01"))
    assert everything(built) == state


def test_largest_changes_are_explained_by_the_pure_scorer_under_both_policies(
    built: Register,
) -> None:
    report = preview_policy(built, CANDIDATE, largest=5)
    sides = preview_standings(built, CANDIDATE)
    assert len(report.largest) == 5
    deltas = [abs(c.delta) for c in report.largest]
    assert deltas == sorted(deltas, reverse=True)
    everyone = sorted(abs(a[0] - b[0]) for b, a in sides.values())
    assert deltas == everyone[::-1][:5]
    for change in report.largest:
        b, a = sides[change.subject_id]
        assert (change.before.score, change.before.grade) == (b[0], b[1])
        assert (change.after.score, change.after.grade) == (a[0], a[1])
        assert change.reasons, change.subject_id
        counted = sum(line.points for line in change.after.explanation)
        assert change.after.score == max(0, min(2000, 1000 + counted))
    first = report.to_json()["largest_changes"][0]
    assert set(first) == {"subject_id", "delta", "reasons", "before", "after"}
    assert first["after"]["explanation"] == [
        line.to_json() for line in report.largest[0].after.explanation
    ]


def test_repaired_record_explanation_ends_at_the_earlier_of_repair_and_new_validity(
    built: Register,
) -> None:
    with built.read() as conn:
        policy = load_policy(CANDIDATE)
        pure = subject_standing(conn, policy, "s-001", d("2025-06-01"))
    assert [line.effective_until for line in pure.explanation] == [d("2025-12-01")]
    report = preview_policy(built, CANDIDATE, as_of=d("2025-06-01"))
    assert report.as_of == d("2025-06-01")
    assert any("rescores as of today" in note for note in report.notes)


def test_preview_at_another_day_equals_activation_rescored_that_day(
    built: Register, clock: FixedDateClock
) -> None:
    later = d("2026-09-15")
    sides = preview_standings(built, CANDIDATE, as_of=later)
    assert preview_standings(built, CANDIDATE, as_of=later, engine=Engine.DUCKDB) == sides
    clock.day = later
    rescore_everyone(built, later, actor="test")
    assert {s: b for s, (b, _) in sides.items()} == stored(built)
    activate_policy(built, CANDIDATE, actor="test", comment="go")
    assert {s: a for s, (_, a) in sides.items()} == stored(built)


def test_a_wrong_candidate_names_its_key_and_a_changed_text_under_a_stored_version_is_refused(
    built: Register,
) -> None:
    with pytest.raises(PolicyError) as caught:
        preview_policy(built, CANDIDATE.replace("points = -150", 'points = "many"'))
    assert "points" in str(caught.value)
    with pytest.raises(ConflictError) as refused:
        preview_policy(built, BASE.replace("min = 900", "min = 901"))
    assert "preview@1" in str(refused.value)
    same = preview_policy(built, BASE)
    assert same.score_changed == 0 and same.grade_changed == 0
    assert any("is the active policy" in note for note in same.notes)
    with built.read() as conn:
        dues = conn.execute(select(cases.c.due_on)).all()
    assert dues


@pytest.mark.parametrize("engine", [Engine.DATABASE, Engine.DUCKDB])
def test_a_register_without_records_previews_the_base_scores(
    register: Register, engine: Engine
) -> None:
    activate_policy(register, BASE, actor="test", comment="base")
    import_subjects(register, rows([subject(1), subject(2)]), actor="test", source="seed")
    report = preview_policy(register, CANDIDATE, engine=engine)
    assert report.subjects == 2 and report.score_changed == 0
    assert report.grade_matrix == {"B": {"B": 2}}
    assert report.largest == []


def test_preview_needs_an_active_policy(register: Register) -> None:
    with pytest.raises(NoActivePolicyError):
        preview_policy(register, BASE)


# ----------------------------------------------------------------------------- command line


def run_cli(register: Register, tmp_path: Path, *args: str) -> Result:
    """`credo ARGS` in process, against the test's register, with the clock on TODAY."""
    env = {
        "CREDO_HOME": str(tmp_path),
        "CREDO_DATABASE_URL": register.engine.url.render_as_string(hide_password=False),
        "CREDO_TODAY": TODAY.isoformat(),
    }
    return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)


def test_cli_preview_prints_the_report_and_its_json(built: Register, tmp_path: Path) -> None:
    candidate = tmp_path / "next.toml"
    candidate.write_text(CANDIDATE, encoding="utf-8")
    state = everything(built)
    as_json = run_cli(built, tmp_path, "policy", "preview", str(candidate), "--json")
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.stdout)
    assert data == preview_policy(built, CANDIDATE, source=str(candidate)).to_json()
    assert data["candidate"] == "preview@2" and data["as_of"] == TODAY.isoformat()
    shown = run_cli(built, tmp_path, "policy", "preview", str(candidate))
    assert shown.exit_code == 0, shown.output
    text_ = shown.stdout
    assert "preview preview@1 -> preview@2 as of 2026-03-15: 60 subjects" in text_
    assert "grades (rows: before, columns: after)" in text_
    assert "largest score changes (20)" in text_
    assert "adverse-outcome ratio by organisation" in text_
    for change in data["lists"]:
        if change["entered"]["count"]:
            assert change["entered"]["subjects"][0] in text_
    assert everything(built) == state


def test_cli_preview_refuses_a_wrong_policy_with_its_key(built: Register, tmp_path: Path) -> None:
    candidate = tmp_path / "bad.toml"
    candidate.write_text(CANDIDATE.replace('valid_for = "P18M"', 'valid_for = "P11Y"'), "utf-8")
    result = run_cli(built, tmp_path, "policy", "preview", str(candidate))
    assert result.exit_code == 1
    assert "court.minor" in result.stderr and "valid_for" in result.stderr
    usage = run_cli(built, tmp_path, "policy", "preview", str(candidate), "--as-of", "soon")
    assert usage.exit_code == 2


# ----------------------------------------------------------------------------- snapshot


def snapshot_tables(register: Register, directory: Path) -> tuple[str, tuple[Any, ...]]:
    """How the snapshot kept under `directory` was refreshed, and its three tables."""
    with preview_duckdb.opened(register.engine, directory) as snap, register.read() as conn:
        snap.refresh(register.engine, conn)
        # subjects are numbered in the order they reached the snapshot: compare by name
        tables = tuple(
            snap.run(
                f"SELECT t.* EXCLUDE (subject_id), s.name FROM {name} t "
                "JOIN subjects s ON s.id = t.subject_id ORDER BY ALL"
            )
            if name != "subjects"
            else snap.run("SELECT name, organisation FROM subjects ORDER BY ALL")
            for name in ("records", "cases", "subjects")
        )
        assert len(tables[0]) == snap.run("SELECT COUNT(*) FROM records")[0][0]
        return snap.how, tables


def assert_refreshed(register: Register, tmp_path: Path, how: str) -> None:
    """The kept snapshot, refreshed `how`, equals one read afresh, and the DuckDB preview
    equals the in-database one."""
    assert register.home is not None
    kept_how, kept = snapshot_tables(register, register.home)
    fresh_dir = tmp_path / f"fresh-{len(list(tmp_path.glob('fresh-*')))}"
    fresh_how, fresh = snapshot_tables(register, fresh_dir)
    assert (kept_how, fresh_how) == (how, "full")
    assert kept == fresh
    report = preview_policy(register, CANDIDATE, engine=Engine.DUCKDB)
    assert report.snapshot == "current"
    sides = preview_standings(register, CANDIDATE, engine=Engine.DATABASE)
    assert preview_standings(register, CANDIDATE, engine=Engine.DUCKDB) == sides


def inquire(register: Register, sid: str) -> None:
    now = register.clock.now()
    write_inquiries(register, [Inquiry(sid, "personnel", "promotion", TODAY, now, "api")])


def test_the_snapshot_is_kept_and_refreshed_incrementally_after_each_kind_of_change(
    built: Register, clock: FixedDateClock, tmp_path: Path
) -> None:
    reg = built
    first = preview_policy(reg, CANDIDATE, engine=Engine.DUCKDB)
    assert first.snapshot == "full"
    assert reg.home is not None
    assert preview_duckdb.snapshot_path(reg.engine, reg.home).exists()
    assert preview_policy(reg, CANDIDATE, engine=Engine.DUCKDB).snapshot == "current"
    # an inquiry changes no score: the snapshot only moves its label
    inquire(reg, "s-010")
    assert preview_policy(reg, CANDIDATE, engine=Engine.DUCKDB).snapshot == "current"
    # new records, one of them on a subject with an open objection
    file(reg, "N-1", "s-010", "court.defiance", "2026-03-10")
    file(reg, "N-2", "s-003", "tax.arrears", "2026-03-01")
    assert_refreshed(reg, tmp_path, "incremental")
    # new subjects, then a record for one of them
    import_subjects(
        reg, rows([subject(61, organisation="Org 9"), subject(62)]), actor="t", source="more"
    )
    file(reg, "N-3", "s-061", "civic.volunteering", "2026-03-02")
    assert_refreshed(reg, tmp_path, "incremental")
    # an objection, then each decision: reject, correct, revoke, and a repair
    ids = {
        ref: file(reg, ref, sid, cat, day)
        for ref, sid, cat, day in (
            ("D-1", "s-020", "court.defiance", "2026-01-05"),
            ("D-2", "s-021", "court.defiance", "2026-01-06"),
            ("D-3", "s-022", "court.minor", "2026-01-07"),
            ("D-4", "s-023", "tax.arrears", "2026-01-08"),
        )
    }
    assert_refreshed(reg, tmp_path, "incremental")
    objections = [
        object_to_record(reg, sid, ids[ref], "Not me.")
        for ref, sid in (("D-1", "s-020"), ("D-2", "s-021"), ("D-3", "s-022"))
    ]
    assert_refreshed(reg, tmp_path, "incremental")
    clock.day = d("2026-03-20")
    decide_case(reg, objections[0], reviewer="rev", outcome="reject", reasons="Proven.")
    assert_refreshed(reg, tmp_path, "incremental")
    decide_case(
        reg,
        objections[1],
        reviewer="rev",
        outcome="correct",
        reasons="Minor.",
        changes={"category": "court.minor"},
    )
    assert_refreshed(reg, tmp_path, "incremental")
    decide_case(reg, objections[2], reviewer="rev", outcome="revoke", reasons="Wrong.")
    repair = request_repair(reg, "s-023", ids["D-4"], "Paid.")
    assert preview_policy(reg, CANDIDATE, engine=Engine.DUCKDB).snapshot == "incremental"
    decide_case(
        reg, repair, reviewer="rev", outcome="approve", reasons="OK.", repair_on=d("2026-04-01")
    )
    inquire(reg, "s-023")
    assert_refreshed(reg, tmp_path, "incremental")
    # every change at once, then the prediction still holds for the real activation
    file(reg, "N-4", "s-030", "court.defiance", "2026-03-19")
    again = object_to_record(reg, "s-020", ids["D-1"], "Again.")
    decide_case(reg, again, reviewer="rev", outcome="revoke", reasons="Wrong after all.")
    clock.day = TODAY
    predicted = preview_standings(reg, CANDIDATE, engine=Engine.DUCKDB)
    assert predicted == preview_standings(reg, CANDIDATE, engine=Engine.DATABASE)
    activate_policy(reg, CANDIDATE, actor="test", comment="go")
    assert {s: a for s, (_, a) in predicted.items()} == stored(reg)


def test_an_activation_is_replayed_into_the_snapshot(
    built: Register, clock: FixedDateClock, tmp_path: Path
) -> None:
    reg = built
    assert preview_policy(reg, CANDIDATE, engine=Engine.DUCKDB).snapshot == "full"
    activate_policy(reg, CANDIDATE, actor="test", comment="go")
    file(reg, "A-1", "s-040", "court.minor", "2026-03-01")
    # the ends and due days activation rewrote, recomputed in DuckDB
    assert_refreshed(reg, tmp_path, "incremental")
    # and back: the base policy's durations again (an objection filed in between)
    object_to_record(reg, "s-040", file(reg, "A-2", "s-040", "court.defiance", "2026-03-02"), "No.")
    activate_policy(reg, BASE, actor="test", comment="back")
    third = CANDIDATE.replace('version = "2"', 'version = "3"', 1).replace(
        'valid_for = "P2Y"', 'valid_for = "P3Y"', 1
    )
    predicted = preview_standings(reg, third, engine=Engine.DUCKDB)
    assert_refreshed(reg, tmp_path, "current")
    activate_policy(reg, third, actor="test", comment="third")
    assert {s: a for s, (_, a) in predicted.items()} == stored(reg)


def test_a_snapshot_of_another_history_or_after_an_unknown_write_is_read_afresh(
    built: Register, tmp_path: Path
) -> None:
    reg = built
    assert reg.home is not None
    assert preview_policy(reg, CANDIDATE, engine=Engine.DUCKDB).snapshot == "full"
    path = preview_duckdb.snapshot_path(reg.engine, reg.home)
    duck = duckdb.connect(str(path))
    duck.execute("UPDATE credo_snapshot SET head_hash = 'not this chain'")
    duck.close()
    assert preview_policy(reg, CANDIDATE, engine=Engine.DUCKDB).snapshot == "full"
    with reg.write() as conn:
        audit.append(conn, actor="test", action="something.new", payload={}, at=reg.clock.now())
    assert preview_policy(reg, CANDIDATE, engine=Engine.DUCKDB).snapshot == "full"
    path.write_bytes(b"not a DuckDB file")
    assert preview_policy(reg, CANDIDATE, engine=Engine.DUCKDB).snapshot == "full"
    assert preview_policy(reg, CANDIDATE, engine=Engine.DUCKDB).snapshot == "current"


def test_previews_from_two_threads_take_turns_on_the_snapshot(built: Register) -> None:
    expected = preview_policy(built, CANDIDATE, engine=Engine.DATABASE).to_json()
    with ThreadPoolExecutor(2) as pool:
        reports = list(
            pool.map(lambda _: preview_policy(built, CANDIDATE, engine=Engine.DUCKDB), range(4))
        )
    assert sorted(r.snapshot for r in reports) == ["current", "current", "current", "full"]
    for report in reports:
        assert _without_engine_note(report.to_json()) == expected


def test_a_home_that_cannot_hold_the_snapshot_keeps_it_in_memory(
    built: Register, tmp_path: Path
) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("", encoding="utf-8")
    built.home = blocked
    try:
        assert preview_policy(built, CANDIDATE, engine=Engine.DUCKDB).snapshot == "full"
        inquire(built, "s-010")
        file(built, "M-1", "s-011", "court.defiance", "2026-03-01")
        report = preview_policy(built, CANDIDATE, engine=Engine.DUCKDB)
        assert report.snapshot == "incremental"
        expected = preview_policy(built, CANDIDATE, engine=Engine.DATABASE).to_json()
        assert _without_engine_note(report.to_json()) == expected
    finally:
        preview_duckdb.forget()


@pytest.mark.parametrize("engine", [Engine.DATABASE, Engine.DUCKDB])
def test_preview_fairness_equals_the_fairness_report_on_both_sides(
    built: Register, engine: Engine
) -> None:
    """Counted per organisation and outcome in the engine, the figures are the fairness
    report's own, subjects without an organisation included."""
    import_subjects(
        built,
        rows(subject(n, organisation=org) for n, org in ((61, ""), (62, "  "), (63, "Org 0"))),
        actor="test",
        source="more",
    )
    file(built, "F-1", "s-061", "court.defiance", "2026-03-01")
    report = preview_policy(built, CANDIDATE, engine=engine)
    sides = preview_standings(built, CANDIDATE, engine=engine)
    with built.read() as conn:
        orgs = dict(conn.execute(text("SELECT id, organisation FROM subjects")).all())
    assert report.fairness is not None
    for n, (side, policy) in enumerate((("before", BASE), ("after", CANDIDATE))):
        expected = fairness(
            [
                FairnessRow(s, orgs[s], r[n][0], r[n][1], _t(r[n][2]), _t(r[n][3]))
                for s, r in sides.items()
            ],
            load_policy(policy),
            by="organisation",
        )
        assert report.fairness["overall"]["adverse_rate"][side] == expected.overall.adverse_rate
        assert report.fairness["flagged"][side] == expected.flagged
        assert [g["group"] for g in report.fairness["groups"]] == [g.group for g in expected.groups]
        for group in report.fairness["groups"]:
            figures = expected.group(group["group"])
            assert group["subjects"] == figures.subjects
            assert group["adverse_rate"][side] == figures.adverse_rate
            assert group["ratio"][side] == figures.ratio
            assert group["flagged"][side] == figures.flagged
    assert "(none)" in [g["group"] for g in report.fairness["groups"]]


def test_a_snapshot_read_in_parts_equals_one_read_whole(
    built: Register, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = snapshot_tables(built, tmp_path / "whole")
    monkeypatch.setattr(preview_source, "PART_ROWS", 1)
    monkeypatch.setattr(preview_source, "PARTS", 3)
    monkeypatch.setattr(preview_source, "SUBJECT_ROWS", 7)  # subjects in groups of 7
    assert snapshot_tables(built, tmp_path / "parts") == whole
    with preview_duckdb.opened(built.engine, tmp_path / "parts") as snap:
        numbers = snap.run("SELECT COUNT(*), COUNT(DISTINCT id), MIN(id), MAX(id) FROM subjects")
        tables = snap.run("SELECT table_name FROM duckdb_tables() WHERE table_name LIKE 'fresh%'")
    count = numbers[0][0]
    assert count > 7 * 3
    assert tuple(numbers[0]) == (count, count, 1, count)  # numbered 1..n across the groups
    assert tables == []  # the parts were put in place
    preview_duckdb.forget(built.home, built.engine)
    report = preview_policy(built, CANDIDATE, engine=Engine.DUCKDB)
    assert report.snapshot == "full"
    expected = preview_policy(built, CANDIDATE, engine=Engine.DATABASE).to_json()
    assert _without_engine_note(report.to_json()) == expected


def test_a_torn_fresh_read_is_read_again_without_keeping_subjects_twice(
    built: Register, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the parts of a fresh read saw different heads with a scoring write between
    them (told here by the check itself, once), the read is made again: the subjects the
    first attempt handed over are not kept twice."""
    monkeypatch.setattr(preview_source, "SUBJECT_ROWS", 5)
    relevant_after = preview_source._relevant_after
    checks: list[int] = []

    def torn_once(cur: Any, since: int, until: int) -> bool:
        checks.append(since)
        return len(checks) == 1 or relevant_after(cur, since, until)

    monkeypatch.setattr(preview_source, "_relevant_after", torn_once)
    torn = snapshot_tables(built, tmp_path / "torn")
    assert len(checks) == 4  # two attempts, each checked for tears and for later writes
    monkeypatch.setattr(preview_source, "_relevant_after", relevant_after)
    assert torn == snapshot_tables(built, tmp_path / "fresh")


def test_a_fresh_read_cut_short_leaves_the_snapshot_as_it_was(
    built: Register, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh read that fails after some of its parts were stored changes nothing: the
    snapshot keeps its tables and label, and no part is left behind."""
    home = tmp_path / "cut"
    before = snapshot_tables(built, home)
    file(built, "CUT-1", "s-005", "court.minor", "2026-03-01")
    monkeypatch.setattr(preview_source, "SUBJECT_ROWS", 4)
    grouped = preview_source._grouped

    def failing(reader: Any, rows: int) -> Iterator[Any]:
        for n, part in enumerate(grouped(reader, rows)):
            if n == 2:
                raise OSError("the connection was lost")
            yield part

    monkeypatch.setattr(preview_source, "_grouped", failing)
    with preview_duckdb.opened(built.engine, home) as snap, built.read() as conn:
        with pytest.raises(OSError, match="connection was lost"):
            snap._read_afresh(built.engine, preview_source.read_head(conn))
        label = snap.run("SELECT head FROM credo_snapshot")
        assert (
            snap.run("SELECT table_name FROM duckdb_tables() WHERE table_name LIKE 'fresh%'") == []
        )
    with built.read() as conn:
        assert label[0][0] < preview_source.read_head(conn).seq
    monkeypatch.setattr(preview_source, "_grouped", grouped)
    monkeypatch.setattr(preview_duckdb.Snapshot, "_catch_up", lambda *a: "")  # read afresh
    assert snapshot_tables(built, home) != before
    assert snapshot_tables(built, home) == snapshot_tables(built, tmp_path / "fresh")


def test_keeping_the_snapshot_after_a_load_leaves_the_next_preview_current(
    built: Register, tmp_path: Path
) -> None:
    """`credo policy snapshot` (keep_snapshot) brings the kept snapshot up to what is stored:
    the first preview after it reads no fresh copy, and matches one."""
    reg = built
    assert keep_snapshot(reg) == "full"
    assert keep_snapshot(reg) == "current"
    file_rows(
        reg,
        "court",
        [
            record("BIG-1", "s-004", "court.defiance", "2026-03-02"),
            record("BIG-2", "s-005", "court.defiance", "2026-03-03"),
        ],
    )
    assert keep_snapshot(reg) == "incremental"
    assert_refreshed(reg, tmp_path, "current")


def test_cli_policy_snapshot_says_how_it_brought_the_snapshot_current(
    built: Register, tmp_path: Path
) -> None:
    first = run_cli(built, tmp_path, "policy", "snapshot")
    assert first.exit_code == 0, first.output
    assert first.stdout.startswith("policy preview snapshot: full (")
    again = run_cli(built, tmp_path, "policy", "snapshot")
    assert again.stdout.startswith("policy preview snapshot: current (")


def test_more_new_records_than_the_snapshot_holds_stream_in_incrementally(
    built: Register, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Filed id ranges are read as a stream of Arrow batches, a slice of ids at a time,
    whatever their size: many new records on a small snapshot are caught up, not read
    afresh, and equal a fresh read."""
    reg = built
    monkeypatch.setattr(preview_duckdb, "FILED_SLICE", 7)
    assert keep_snapshot(reg) == "full"
    with preview_duckdb.opened(reg.engine, reg.home) as snap:
        held = snap.run("SELECT COUNT(*) FROM records")[0][0]
    new = [
        record(f"MANY-{n}", f"s-{8 + n % 53:03d}", "civic.volunteering", "2026-02-01")
        for n in range(2 * held + 10)
    ]
    assert file_rows(reg, "personnel", new).stored == len(new)
    assert keep_snapshot(reg) == "incremental"
    assert_refreshed(reg, tmp_path, "current")


def test_the_kept_scoring_is_made_again_whole_after_a_catch_up_that_touches_most_subjects(
    built: Register,
) -> None:
    """A few filed records mark their subjects to be scored again; filed records as many as
    a quarter of the subjects drop the kept scoring instead (marking every subject of a
    10M-record catch-up ran DuckDB out of memory). Either way the preview stays exact."""
    reg = built
    assert keep_snapshot(reg, score_on=TODAY) == "full"

    def kept() -> tuple[int, int]:
        with preview_duckdb.opened(reg.engine, reg.home) as snap:
            keys = snap.run("SELECT COUNT(*) FROM credo_scored_key")[0][0]
            return keys, snap.run("SELECT COUNT(*) FROM credo_touched")[0][0]

    def exact() -> None:
        columnar = preview_policy(reg, CANDIDATE, engine=Engine.DUCKDB)
        expected = preview_policy(reg, CANDIDATE, engine=Engine.DATABASE).to_json()
        assert _without_engine_note(columnar.to_json()) == expected

    with reg.read() as conn:
        subjects = conn.execute(text("SELECT COUNT(*) FROM subjects")).scalar_one()
    assert (
        file_rows(
            reg, "personnel", [record("FEW-1", "s-011", "civic.volunteering", "2026-02-01")]
        ).stored
        == 1
    )
    assert keep_snapshot(reg) == "incremental"
    assert kept() == (1, 1)  # the kept scoring, and the one subject to score again
    exact()
    many = [
        record(f"MOST-{n}", f"s-{1 + n % 50:03d}", "civic.volunteering", "2026-02-01")
        for n in range(subjects // 4 + 1)
    ]
    assert file_rows(reg, "personnel", many).stored == len(many)
    assert keep_snapshot(reg) == "incremental"
    assert kept() == (0, 0)  # scored again whole by the next preview
    exact()
    assert kept() == (1, 0)


def test_filed_records_are_read_only_at_the_head_they_are_asked_for(built: Register) -> None:
    """A stream of filed records from a register already past the asked head is refused
    (Moved): the caller's transaction and the stream must see the same writes."""
    with built.read() as conn:
        head = preview_source.read_head(conn)
        count = int(conn.execute(text("SELECT COUNT(*) FROM records")).scalar_one())
    with preview_source.filed_records(built.engine, head) as read:
        assert read(1, 10**9).read_all().num_rows == count
        assert read(1, 10).read_all().column("id").to_pylist() == list(range(1, 11))
    file(built, "LATE-1", "s-050", "court.minor", "2026-03-01")
    with (
        pytest.raises(preview_source.Moved, match="try again"),
        preview_source.filed_records(built.engine, head),
    ):
        pass


def test_a_snapshot_that_cannot_be_caught_up_is_read_afresh_only_from_a_small_register(
    built: Register,
) -> None:
    reg = built
    assert reg.home is not None
    path = preview_duckdb.snapshot_path(reg.engine, reg.home)
    with reg.read() as conn:
        count = int(conn.execute(text("SELECT COUNT(*) FROM records")).scalar_one())
    assert keep_snapshot(reg, afresh_up_to=count - 1) == ""
    assert not path.exists() or keep_snapshot(reg, afresh_up_to=count - 1) == ""
    assert keep_snapshot(reg, afresh_up_to=count) == "full"
    assert keep_snapshot(reg, afresh_up_to=0) == "current"


def _records_csv(path: Path, items: list[dict[str, Any]]) -> Path:
    names = list(items[0])
    lines = [",".join(names)] + [",".join(str(i[n]) for n in names) for i in items]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _keepers() -> list[int]:
    """The snapshot keeper processes this process started and left running."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == os.getpid() and b"credo.services.preview_snapshot" in command:
            found.append(int(entry.name))
    return found


def _import_csv(register: Register, path: Path, **options: Any) -> importing.ImportReport:
    with path.open("rb") as stream:
        return importing.import_file(
            register, stream, "csv", authority_id="court", actor="test", source=path.name, **options
        )


def test_a_long_import_keeps_the_preview_snapshot_current_as_it_goes(
    built: Register, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`credo import` of a big file starts the snapshot keeper: a process of its own catches
    the snapshot up with what the import stored (on PostgreSQL as it stores, on SQLite
    beside its closing rescore), then once more at its end. The first preview after it
    reads no copy, and the kept snapshot equals a fresh read."""
    reg = built
    monkeypatch.setattr(importing, "KEEP_SNAPSHOT_FROM", 1)  # any file is "long"
    monkeypatch.setattr(preview_snapshot, "SMALL_REGISTER", 0)  # never read afresh
    items = [
        record(f"KEPT-{n}", f"s-{8 + n % 53:03d}", "court.minor", "2026-02-10") for n in range(400)
    ]
    # no snapshot yet, and a register too big to read afresh: the keeper leaves it
    first = _import_csv(reg, _records_csv(tmp_path / "kept.csv", items))
    assert first.snapshot.startswith("left to the next preview")
    assert preview_policy(reg, CANDIDATE, engine=Engine.DUCKDB).snapshot == "full"
    # with a snapshot to catch up: kept, in chunks of the file, each its own transaction
    more = [
        record(f"KEPT-{n}", f"s-{8 + n % 53:03d}", "court.minor", "2026-02-11")
        for n in range(400, 1400)
    ]
    csv = _records_csv(tmp_path / "more.csv", more)
    report = _import_csv(reg, csv, chunk_bytes=2_000, commit_rows=100)
    assert (report.stored, report.snapshot) == (1000, "current")
    assert_refreshed(reg, tmp_path, "current")
    assert _keepers() == []
    keeper = preview_snapshot.SnapshotKeeper(reg)  # the check above sees a running keeper
    keeper.start()
    assert len(_keepers()) == 1
    assert keeper.finish(TODAY) == "current"
    assert _keepers() == []
    # a small file leaves the snapshot to the next preview, which catches it up
    monkeypatch.setattr(importing, "KEEP_SNAPSHOT_FROM", 1 << 30)
    last = [record("KEPT-LAST", "s-010", "court.defiance", "2026-02-12")]
    assert _import_csv(reg, _records_csv(tmp_path / "last.csv", last)).snapshot == ""
    assert_refreshed(reg, tmp_path, "incremental")


def test_an_import_that_fails_stops_its_snapshot_keeper(
    built: Register, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg = built
    assert keep_snapshot(reg) == "full"
    monkeypatch.setattr(importing, "KEEP_SNAPSHOT_FROM", 1)
    items = [record(f"FAIL-{n}", "s-009", "court.minor", "2026-02-10") for n in range(50)]
    items.append(record("FAIL-BAD", "s-009", "court.minor", "not a day"))

    def refuse(reject: Reject) -> None:
        raise RuntimeError(f"stop at line {reject.line}")

    with pytest.raises(RuntimeError, match="stop at line 52"):
        _import_csv(reg, _records_csv(tmp_path / "fails.csv", items), on_reject=refuse)
    assert _keepers() == []
    assert keep_snapshot(reg) in ("current", "incremental")
    assert_refreshed(reg, tmp_path, "current")
