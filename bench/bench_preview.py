"""Policy preview benchmark: `credo policy preview` beside the reference DuckDB rescore.

Builds (or, with --keep-data, reuses) a synthetic register of N subjects and M records
through credo's own `credo init` / `credo subjects import` / `credo import`, on SQLite and
PostgreSQL, then times the impact preview of a candidate policy (the benchmark policy with
changed points, validity periods, a cap and the objection period) from the operational
store to the finished report, in process, as `credo policy preview` runs it: right after
the import (on a register built in this run: the snapshot as the import kept it), cold (the
snapshot file under CREDO_HOME deleted first), current (nothing written since the last
preview) and after a small change (ten filings, a rejected objection and 200 inquiries
since the last preview, caught up incrementally). In the same run it times the DuckDB
rescore of the reference benchmark in CREDO_REFERENCE_DIR (its own data, its own SQL; at a
reduced scale, the reference's constants are set to the same numbers of subjects and
records), so the
preview's figure comes with a ratio measured side by side.

The small changes stay in a kept register: each run adds eleven records to it.

Run from the repository root with the project's interpreter:

    .venv/bin/python bench/bench_preview.py --subjects 20000 --records 200000
    .venv/bin/python bench/bench_preview.py --keep-data            # full scale, kept

It checks the preview's answer (the "before" side equals the stored standings; the
candidate's scores equal a rescore done by activating it on a copy, at small scale with
--verify-activation), never how fast it is.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_register as br
from credo.bootstrap import build_register
from credo.domain.policy_load import load_policy
from credo.services.policies import activate_policy
from credo.services.preview import Engine, Preview, preview_policy, preview_standings
from credo.services.register import Register
from credo.store import preview_duckdb
from credo.synthetic import Shape

HERE = Path(__file__).resolve().parent
REFERENCE_COPY = br.DATA / "reference-bench"
OUT = HERE / "out"
TODAY = br.TODAY
log = br.log


def _home(kind: str, shape: Shape) -> Path:
    """Each size keeps its own register (the full scale under the plain name)."""
    full = (shape.subjects, shape.records, shape.seed) == (1_000_000, 10_000_000, 2026)
    suffix = "" if full else f"-{shape.subjects}-{shape.records}-s{shape.seed}"
    return br.DATA / f"preview-{kind}{suffix}"


class PreviewSqlite(br.SqliteEngine):
    """The preview benchmark's own SQLite register (kept apart from bench_register's)."""

    def __init__(self, shape: Shape) -> None:
        super().__init__()
        self.home = _home("sqlite", shape)
        self.db = self.home / "credo.sqlite3"


class PreviewPostgres(br.PostgresEngine):
    """The preview benchmark's own PostgreSQL database."""

    def __init__(self, url: str, shape: Shape) -> None:
        super().__init__(url)
        self.home = _home("postgres", shape)


def marker(engine: br.Engine) -> Path:
    """The file that says a kept register is complete, and of which shape."""
    return engine.home / "preview-register.json"


def build(engine: br.Engine, shape: Shape, subjects_csv: Path, records_csv: Path) -> dict[str, Any]:
    """A complete register through credo's own commands, or the kept one: the import's
    seconds, and for a register built now how the import left the preview's snapshot."""
    wanted = {"subjects": shape.subjects, "records": shape.records, "seed": shape.seed}
    done = marker(engine)
    if done.exists():
        kept = json.loads(done.read_text(encoding="utf-8"))
        if {k: kept.get(k) for k in wanted} == wanted:
            log(f"{engine.name}: reusing the kept register ({done})")
            return {"import_s": float(kept.get("import_s", 0.0))}
    log(f"{engine.name}: fresh database, policy, subjects")
    engine.prepare()
    env = engine.env()
    br.credo(["init", "--policy", str(br.POLICY)], env, "credo init --policy")
    br.credo(["subjects", "import", str(subjects_csv)], env, "credo subjects import")
    log(f"{engine.name}: credo import of {shape.records:,} records")
    child = br.credo(["import", str(records_csv), "--authority", br.AUTHORITY], env, "credo import")
    counts = br.parse_import(child.stdout)
    if counts["stored"] != shape.records:
        raise SystemExit(f"{engine.name}: credo import stored {counts}, not {shape.records}")
    snapshot = next(
        (
            line.split(":", 1)[1].strip()
            for line in child.stdout.splitlines()
            if line.startswith("policy preview snapshot:")
        ),
        "",
    )
    log(f"{engine.name}: credo import {child.seconds:.1f} s (preview snapshot: {snapshot or '-'})")
    engine.after_load()
    done.write_text(
        json.dumps({**wanted, "import_s": round(child.seconds, 1)}) + "\n", encoding="utf-8"
    )
    return {"import_s": round(child.seconds, 1), "import_snapshot": snapshot}


# ----------------------------------------------------------------------------- candidate


def candidate_text(policy_text: str) -> str:
    """The benchmark policy with the kinds of change a policy review makes: points, caps,
    validity periods (longer and shorter), the objection period and a grade band."""
    changes = [
        ('version = "2026.1"', 'version = "2026.2-preview"'),
        ('objection_period = "P30D"', 'objection_period = "P20D"'),
        (
            'points = -100\nvalid_for = "P2Y"\ncap = -200',
            'points = -120\nvalid_for = "P3Y"\ncap = -240',
        ),
        (
            'points = -60\nvalid_for = "P1Y"\ncap = -120',
            'points = -60\nvalid_for = "P2Y"\ncap = -120',
        ),
        (
            'points = -30\nvalid_for = "P6M"\ncap = -60',
            'points = -40\nvalid_for = "P4M"\ncap = -80',
        ),
        ('points = 15\nvalid_for = "P1Y"\ncap = 45', 'points = 10\nvalid_for = "P1Y"\ncap = 30'),
        ("min = 920", "min = 940"),
    ]
    text = policy_text
    for old, new in changes:
        if old not in text:
            raise SystemExit(f"bench policy changed: cannot find {old!r} to make the candidate")
        text = text.replace(old, new, 1)
    return text


# ----------------------------------------------------------------------------- reference


def reference_environment() -> tuple[Path, str]:
    """The reference benchmark's directory and a Python with its packages, or SystemExit."""
    source = br.reference_dir()
    python = os.environ.get("REFBENCH_PYTHON", str(br.DATA / "refvenv" / "bin" / "python"))
    if not Path(python).exists():
        raise SystemExit(
            f"no reference environment at {python}: make one with numpy, pyarrow and duckdb "
            "(python -m venv bench/data/refvenv) or set REFBENCH_PYTHON"
        )
    return source, python


def reference_rescore(runs: int, shape: Shape | None = None) -> dict[str, Any]:
    """The reference DuckDB rescore (its bench_duckdb.py) on a copy of the reference bench
    with its own data and environment; returns its figures. With `shape`, the copy's
    constants are set to that many subjects and records (a reduced-scale run)."""
    source, python = reference_environment()
    copy = REFERENCE_COPY
    if shape is not None:
        copy = REFERENCE_COPY.with_name(f"reference-bench-{shape.subjects}-{shape.records}")
    copy.mkdir(parents=True, exist_ok=True)
    for script in source.glob("*.py"):
        shutil.copy2(script, copy / script.name)
    if shape is not None:
        common = (copy / "common.py").read_text(encoding="utf-8")
        for name, value in (("N_SUBJECTS", shape.subjects), ("N_RECORDS", shape.records)):
            line = next(x for x in common.splitlines() if x.startswith(f"{name} = "))
            common = common.replace(line, f"{name} = {value}")
        (copy / "common.py").write_text(common, encoding="utf-8")
    (copy / "data").mkdir(exist_ok=True)
    if not (copy / "data" / "reference.json").exists():
        log("reference: generating its data (gen_data.py)")
        subprocess.run([python, "gen_data.py"], cwd=copy, check=True)
    medians = []
    for n in range(runs):
        log(f"reference: DuckDB rescore, run {n + 1}/{runs} (bench_duckdb.py, 3 timings each)")
        subprocess.run([python, "bench_duckdb.py"], cwd=copy, check=True, capture_output=True)
        result = json.loads((copy / "results" / "duckdb.json").read_text())
        medians.append(result["rescore_table"]["median_s"])
    return {
        "engine": result["engine"],
        "threads": result["threads"],
        "rescore_table_medians_s": medians,
        "rescore_table_s": round(statistics.median(medians), 3),
    }


# ----------------------------------------------------------------------------- the run


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds taken by fn(), and its result."""
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def comparable(report: Preview) -> dict[str, Any]:
    """A report without the note naming its engine."""
    data = report.to_json()
    data["notes"] = [n for n in data["notes"] if not n.startswith("scored by DuckDB")]
    return data


def small_change(register: Register, tag: str) -> None:
    """What happens between two previews on a live register: ten records filed one by one,
    an objection to one of them rejected, and 200 inquiries."""
    from credo.services.cases import decide_case, object_to_record
    from credo.services.filing import file_record
    from credo.services.inquiries import Inquiry, write_inquiries

    subjects = [f"s-{1 + (time.time_ns() // 1000 + 97 * n) % 1000:07d}" for n in range(10)]
    filed = [
        file_record(
            register,
            {
                "reference": f"PREVIEW-BENCH-{tag}-{n}",
                "subject_id": sid,
                "category": "court.order_defiance",
                "decided_on": "2025-12-15",
                "legal_basis": "Bench Law art. 1",
                "summary": "A record filed between two previews",
            },
            authority_id=br.AUTHORITY,
            actor="bench",
        )
        for n, sid in enumerate(subjects)
    ]
    case = object_to_record(register, subjects[0], filed[0].record_id, "Not me.")
    decide_case(register, case, reviewer="bench", outcome="reject", reasons="Proven.")
    now = register.clock.now()
    write_inquiries(
        register, [Inquiry(sid, br.AUTHORITY, "bench", TODAY, now, "api") for sid in subjects] * 20
    )


def bench_preview(
    register: Register, candidate: str, runs: int, database_runs: int, figures: dict[str, Any]
) -> list[str]:
    """Time the preview every way; returns the problems found. On a register built in this
    run, the first preview is the one right after the import, from the snapshot the import
    kept."""
    problems: list[str] = []
    home = register.home

    def preview(fairness: bool = False) -> Preview:
        return preview_policy(register, candidate, engine=Engine.DUCKDB, with_fairness=fairness)

    def cold(fairness: bool) -> Preview:
        # nothing kept, in memory or on disk: from the operational store to the report
        preview_duckdb.forget(home, register.engine)
        return preview(fairness)

    changes = iter(range(1_000_000))

    def incremental() -> Preview:
        return preview()

    def before_incremental() -> None:
        small_change(register, f"{time.time_ns()}-{next(changes)}")

    plans: list[tuple[str, Callable[[], Preview], int, str, Callable[[], None] | None]] = [
        ("duckdb_cold_s", lambda: cold(False), runs, "full", None),
        ("duckdb_cold_fairness_s", lambda: cold(True), 1, "full", None),
        ("duckdb_warm_s", preview, runs, "current", None),
        (
            "database_s",
            lambda: preview_policy(
                register, candidate, engine=Engine.DATABASE, with_fairness=False
            ),
            database_runs,
            "",
            None,
        ),
        ("duckdb_incremental_s", incremental, runs, "incremental", before_incremental),
        ("duckdb_cold_after_changes_s", lambda: cold(False), 1, "full", None),
    ]
    if "import_snapshot" in figures:  # built in this run: the preview the import kept for
        plans.insert(0, ("duckdb_after_import_s", preview, 1, "current|incremental", None))
    reports: dict[str, Preview] = {}
    for key, fn, count, how, setup in plans:
        times = []
        for n in range(count):
            if setup is not None:
                setup()  # not timed: the write a preview then catches up with
            log(f"  {key}: run {n + 1}/{count}")
            seconds, reports[key] = timed(fn)
            times.append(seconds)
            log(f"  {key}: {seconds:.2f} s (snapshot: {reports[key].snapshot or '-'})")
            if reports[key].snapshot not in how.split("|"):
                problems.append(f"{key}: snapshot {reports[key].snapshot!r}, expected {how!r}")
        if times:
            figures[key] = round(statistics.median(times), 3)
            figures[key.removesuffix("_s") + "_runs_s"] = [round(t, 3) for t in times]
    base = comparable(reports["duckdb_cold_s"])
    figures["subjects"] = base["subjects"]
    figures["score_changed"] = base["score_changed"]
    figures["grade_changed"] = base["grade_changed"]
    for key in ("duckdb_after_import_s", "duckdb_warm_s", "database_s"):
        if key in reports and comparable(reports[key]) != base:
            problems.append(f"{key}: the report differs from the cold DuckDB one")
    if "duckdb_incremental_s" in reports and comparable(
        reports["duckdb_incremental_s"]
    ) != comparable(reports["duckdb_cold_after_changes_s"]):
        problems.append("the incrementally refreshed report differs from one read afresh")
    return problems


def verify_activation(register: Register, base: str, candidate: str) -> list[str]:
    """Activate the candidate and compare every stored standing with the preview; then
    activate the base policy again. Rewrites the kept register's standings."""
    from sqlalchemy import text

    sides = preview_standings(register, candidate, engine=Engine.DUCKDB)
    activate_policy(register, candidate, actor="bench", comment="bench_preview check")
    with register.read() as conn:
        stored = {
            r[0]: (int(r[1]), str(r[2]), str(r[3]), str(r[4]))
            for r in conn.execute(
                text("SELECT subject_id, score, grade, lists, measures FROM standings")
            )
        }
    activate_policy(register, base, actor="bench", comment="bench_preview restores the base")
    wrong = sum(1 for sid, (_, after) in sides.items() if stored.get(sid) != after)
    if wrong or len(stored) != len(sides):
        return [f"activation: {wrong} of {len(sides)} subjects differ from the preview"]
    log(f"activation matched the preview for all {len(sides):,} subjects")
    return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--subjects", type=int, default=1_000_000)
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--engines", default="sqlite,postgres", help="comma-separated")
    parser.add_argument(
        "--pg-url",
        default="postgresql://postgres@127.0.0.1:5432/credo_preview_bench",
        help="database to create and drop (it must not hold anything you need)",
    )
    parser.add_argument("--runs", type=int, default=3, help="DuckDB preview runs (median)")
    parser.add_argument(
        "--database-runs", type=int, default=1, help="runs of the in-database preview"
    )
    parser.add_argument("--reference-runs", type=int, default=2, help="reference runs")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--keep-data", action="store_true", help="keep (and reuse) the registers")
    parser.add_argument("--build-only", action="store_true", help="build the registers and stop")
    parser.add_argument(
        "--verify-activation",
        action="store_true",
        help="also activate the candidate and compare every standing (slow at full scale)",
    )
    args = parser.parse_args(argv)
    names = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = set(names) - {"sqlite", "postgres"}
    if unknown or not names:
        parser.error(f"unknown engines: {', '.join(sorted(unknown)) or '(none)'}")
    if not args.build_only:
        reference_environment()  # refused before anything is built or measured
    policy_text = br.POLICY.read_text(encoding="utf-8")
    policy = load_policy(policy_text, str(br.POLICY))
    candidate = candidate_text(policy_text)
    load_policy(candidate, "candidate")
    shape = Shape(subjects=args.subjects, records=args.records, today=TODAY, seed=args.seed)
    subjects_csv, records_csv = br.generate(policy, shape, policy_text)

    results: dict[str, Any] = {}
    problems: list[str] = []
    engines: list[br.Engine] = [
        PreviewSqlite(shape) if name == "sqlite" else PreviewPostgres(args.pg_url, shape)
        for name in names
    ]
    try:
        for engine in engines:
            results[engine.name] = build(engine, shape, subjects_csv, records_csv)
        if args.build_only:
            return 0
        scale = None if (shape.subjects, shape.records) == (1_000_000, 10_000_000) else shape
        reference = {"before": reference_rescore(args.reference_runs, scale)}
        for engine in engines:
            log(f"{engine.name}: preview of {candidate.splitlines()[0] or 'the candidate'}")
            register = build_register(engine.settings())
            try:
                figures = results[engine.name]
                problems += [
                    f"{engine.name}: {p}"
                    for p in bench_preview(
                        register, candidate, args.runs, args.database_runs, figures
                    )
                ]
                if args.verify_activation:
                    problems += [
                        f"{engine.name}: {p}"
                        for p in verify_activation(register, policy_text, candidate)
                    ]
            finally:
                preview_duckdb.forget(register.home, register.engine)
                register.engine.dispose()
        reference["after"] = reference_rescore(args.reference_runs, scale)
    finally:
        if not args.keep_data and not args.build_only:
            for engine in engines:
                engine.remove()
    medians = (
        reference["before"]["rescore_table_medians_s"]
        + reference["after"]["rescore_table_medians_s"]
    )
    ref_s = round(statistics.median(medians), 3)
    for figures in results.values():
        for key in (
            "duckdb_after_import_s",
            "duckdb_cold_s",
            "duckdb_cold_fairness_s",
            "duckdb_warm_s",
            "duckdb_incremental_s",
            "database_s",
        ):
            if key in figures:
                figures[key.removesuffix("_s") + "_ratio"] = round(figures[key] / ref_s, 2)
    report = {
        "shape": {"subjects": shape.subjects, "records": shape.records, "seed": shape.seed},
        "reference_duckdb_rescore_s": ref_s,
        "reference": reference,
        "credo": results,
        "problems": problems,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "at": datetime.now().isoformat(timespec="seconds"),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results-preview.json").write_text(json.dumps(report, indent=1) + "\n", "utf-8")
    print()
    print(f"policy preview: {shape.subjects:,} subjects, {shape.records:,} records")
    print(f"reference DuckDB rescore (median of {len(medians)} medians): {ref_s:.3f} s")
    rows = [
        ("DuckDB preview right after the import, s", "duckdb_after_import_s"),
        ("  ratio to reference", "duckdb_after_import_ratio"),
        ("DuckDB preview, cold (store -> report), s", "duckdb_cold_s"),
        ("  ratio to reference", "duckdb_cold_ratio"),
        ("DuckDB preview, cold, with fairness, s", "duckdb_cold_fairness_s"),
        ("  ratio to reference", "duckdb_cold_fairness_ratio"),
        ("DuckDB preview, snapshot current, s", "duckdb_warm_s"),
        ("  ratio to reference", "duckdb_warm_ratio"),
        ("DuckDB preview after a small change, s", "duckdb_incremental_s"),
        ("  ratio to reference", "duckdb_incremental_ratio"),
        ("in-database preview (SQL), s", "database_s"),
        ("  ratio to reference", "database_ratio"),
        ("subjects changing score", "score_changed"),
        ("subjects changing grade", "grade_changed"),
    ]
    width = max(len(label) for label, _ in rows)
    print(f"{'':<{width}}" + "".join(f"{name:>12}" for name in results))
    for label, key in rows:
        cells = "".join(f"{results[n].get(key, '-')!s:>12}" for n in results)
        print(f"{label:<{width}}{cells}")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
