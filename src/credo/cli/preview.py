"""policy preview: what activating a candidate policy would change, without changing it."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from credo.cli.common import AsOf, err, policy_app, read_text, refusals, register

SAMPLE = 5  # subject ids shown per list or measure in the terminal view
BAR = 40  # width of the longest histogram bar


@policy_app.command("preview")
def policy_preview(
    file: Path,
    as_of: AsOf = None,
    as_json: Annotated[bool, typer.Option("--json", help="The whole report as JSON.")] = False,
    with_fairness: Annotated[
        bool,
        typer.Option(
            "--fairness/--no-fairness", help="Include adverse-outcome ratios by organisation."
        ),
    ] = True,
    engine: Annotated[
        str,
        typer.Option(
            help="Where to score: auto (DuckDB when installed), duckdb, or database (SQL)."
        ),
    ] = "auto",
) -> None:
    """Show what activating FILE would change for every subject; nothing is stored.

    Both the active policy and FILE are scored as of the same day (default today, the day
    activation rescores as of), so every difference comes from the policy.
    """
    from credo.services.preview import Engine, preview_policy

    try:
        chosen = Engine(engine)
    except ValueError:
        raise typer.BadParameter(
            f"{engine!r} is not an engine (auto, duckdb or database)", param_hint="--engine"
        ) from None
    text = read_text(file)
    err.print(f"credo: scoring every subject under both policies ({file}) ...", markup=False)
    reg = register()
    try:
        with refusals():
            report = preview_policy(
                reg,
                text,
                as_of=as_of,  # type: ignore[arg-type]
                source=str(file),
                with_fairness=with_fairness,
                engine=chosen,
            )
    finally:
        reg.engine.dispose()  # close the pooled connections before the result is printed
    data = report.to_json()
    if as_json:
        typer.echo(json.dumps(data, ensure_ascii=False))
        return
    for line in render(data):
        typer.echo(line)


@policy_app.command("snapshot")
def policy_snapshot() -> None:
    """Bring the policy preview's snapshot current with the register.

    `credo import` of a big file keeps the snapshot current itself; run this when it could
    not (it reports "left to the next preview": no snapshot yet on a big register) or after
    loading by other means. The next preview then reads only what changed after it, instead
    of the whole register. Previews keep the snapshot current themselves; this only takes
    the first fresh read out of the first preview.
    """
    from credo.services.preview_snapshot import keep_snapshot

    reg = register()
    started = time.perf_counter()
    try:
        with refusals():
            how = keep_snapshot(reg)
    finally:
        reg.engine.dispose()
    if not how:
        err.print(
            "credo: no snapshot to keep: DuckDB is not installed, or the register has no home "
            "(CREDO_HOME) to keep it in",
            markup=False,
        )
        raise typer.Exit(1)
    typer.echo(f"policy preview snapshot: {how} ({time.perf_counter() - started:.1f} s)")


def render(data: dict[str, Any]) -> list[str]:
    """The terminal view of a preview report (the JSON shape of `Preview.to_json`)."""
    out = [
        f"preview {data['active']} -> {data['candidate']} as of {data['as_of']}: "
        f"{data['subjects']:,} subjects",
        f"  score changes for {data['score_changed']:,}, grade for {data['grade_changed']:,}; "
        f"mean score {data['mean_score']['before']} -> {data['mean_score']['after']}",
    ]
    out += [f"  note: {note}" for note in data["notes"]]
    out += ["", "grades (rows: before, columns: after)", *_matrix(data)]
    out += ["", "lists"]
    for change in data["lists"]:
        out.append(f"  {change['id']} ({change['kind']})")
        out += _moves("entered", change["entered"]) + _moves("left", change["left"])
    out += ["", "measures"]
    for change in data["measures"]:
        out.append(f"  {change['id']} ({change['kind']}, applied by {change['authority']})")
        out += _moves("start", change["started"]) + _moves("stop", change["stopped"])
    out += ["", "score distribution (before | after)", *_histogram(data["histogram"])]
    out += ["", f"largest score changes ({len(data['largest_changes'])})"]
    for change in data["largest_changes"]:
        b, a = change["before"], change["after"]
        out.append(
            f"  {change['subject_id']}  {b['score']} {b['grade']} -> {a['score']} {a['grade']}"
            f"  ({change['delta']:+d})"
        )
        out += [f"      {reason}" for reason in change["reasons"]]
    if data.get("fairness"):
        out += ["", *_fairness(data["fairness"])]
    return out


def _matrix(data: dict[str, Any]) -> list[str]:
    cols = data["grades"]["after"]
    rows = data["grades"]["before"]
    width = max(8, *(len(c) + 2 for c in cols))
    lines = [f"  {'':<8}" + "".join(f"{c:>{width}}" for c in cols)]
    for row in rows:
        cells = data["grade_matrix"].get(row, {})
        lines.append(f"  {row:<8}" + "".join(f"{cells.get(c, 0):>{width},}" for c in cols))
    return lines


def _moves(verb: str, moved: dict[str, Any]) -> list[str]:
    if not moved["count"]:
        return []
    sample = ", ".join(moved["subjects"][:SAMPLE])
    more = f", ... ({moved['count'] - SAMPLE:,} more)" if moved["count"] > SAMPLE else ""
    return [f"    {verb:<8}{moved['count']:>9,}  {sample}{more}"]


def _histogram(bins: list[dict[str, Any]]) -> list[str]:
    top = max([1, *(max(b["before"], b["after"]) for b in bins)])
    lines = []
    for b in bins:
        left = "#" * round(BAR * b["before"] / top)
        right = "#" * round(BAR * b["after"] / top)
        lines.append(
            f"  {b['low']:>6}-{b['high']:<6}{b['before']:>10,} {left:>{BAR}}|{right:<{BAR}} "
            f"{b['after']:,}"
        )
    return lines


def _fairness(data: dict[str, Any]) -> list[str]:
    lines = [
        f"adverse-outcome ratio by {data['by']} (flagged above {data['ratio_limit']:.2f}; "
        f"adverse: {data['adverse']})",
    ]
    rate = data["overall"]["adverse_rate"]
    lines.append(f"  {'overall':<28} rate {_num(rate['before'])} -> {_num(rate['after'])}")
    for g in data["groups"]:
        status = _FLAG[(bool(g["flagged"]["before"]), bool(g["flagged"]["after"]))]
        lines.append(
            f"  {g['group'][:28]:<28} ratio {_num(g['ratio']['before'])} -> "
            f"{_num(g['ratio']['after'])}  ({g['subjects']:,} subjects){status}"
        )
    return lines


_FLAG = {
    (False, False): "",
    (True, True): "  flagged",
    (False, True): "  newly flagged",
    (True, False): "  no longer flagged",
}


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
