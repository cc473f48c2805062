"""simulate: project standings forward with no new records (who leaves each list, and when)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from credo.cli.common import app, err, parse_day, read_text, refusals, register
from credo.cli.report import columns


@contextmanager
def _progress() -> Iterator[Callable[[int, int], object]]:
    if not sys.stderr.isatty():
        yield lambda done, total: None
        return
    bar_columns = (
        TextColumn("simulating"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*bar_columns, console=err, transient=True) as bar:
        task = bar.add_task("subjects", total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


@app.command("simulate")
def simulate_cmd(
    years: Annotated[int, typer.Option("--years", help="How many years ahead (1-10).")],
    policy: Annotated[
        Path | None,
        typer.Option("--policy", help="Policy file to project under (default: the active one)."),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option("--from", help="Start day (YYYY-MM-DD; default today).", callback=parse_day),
    ] = None,
    period: Annotated[
        str, typer.Option("--period", help="Count leavers per 'year' or per 'month'.")
    ] = "year",
    as_json: Annotated[
        bool, typer.Option("--json", help="Summary and every subject's timeline as JSON.")
    ] = False,
) -> None:
    """Project standings forward with no new records: who leaves each list, and when.

    Also who enters a list and when each measure ends. Nothing is stored.
    """
    from credo.services.simulate import simulate

    text = read_text(policy) if policy is not None else None
    with _progress() as advance, refusals():
        result = simulate(
            register(),
            text,
            years=years,
            start=start,  # type: ignore[arg-type]
            period=period,
            source=str(policy) if policy else "policy",
            on_progress=advance,
        )
    if as_json:
        typer.echo(json.dumps(result.to_json(), ensure_ascii=False))
        return
    periods = result.periods()
    typer.echo(
        f"simulation under {result.policy} from {result.start} to {result.until}, no new "
        f"records: {result.subjects} subjects, {len(result.timelines)} whose standing changes"
    )
    for title, verb, flows in (
        ("list", "leaving", result.lists),
        ("measure", "ending", result.measures),
    ):
        if not flows:
            continue
        typer.echo("")
        typer.echo(f"{title}s: members now, {verb} in each {result.period}, joining, at the end")
        rows = [[title, "now", *periods, "joining", "at end"]] + [
            [
                name,
                str(flow.now),
                *(str(flow.left.get(p, 0)) for p in periods),
                str(sum(flow.entered.values())),
                str(flow.end),
            ]
            for name, flow in flows.items()
        ]
        for line in columns(rows):
            typer.echo(line)
