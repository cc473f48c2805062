"""report fairness: how standings fall on the organisations, positions or kinds on file."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Annotated

import typer

from credo.cli.common import AsOf, app, refusals, register
from credo.services.fairness import Grouping

report_app = typer.Typer(no_args_is_help=True, help="Reports for auditors and researchers.")
app.add_typer(report_app, name="report")


def columns(rows: Sequence[Sequence[str]], right: int = 1) -> list[str]:
    """Rows of cells as aligned text: the first column left-aligned, the others right-aligned
    from column `right` on (the header row included)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.rjust(w) if i >= right else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


@report_app.command("fairness")
def fairness_cmd(
    by: Annotated[Grouping, typer.Option("--by", help="The attribute to group by.")] = (
        Grouping.ORGANISATION
    ),
    as_of: AsOf = None,
    threshold: Annotated[
        float | None,
        typer.Option(
            "--threshold",
            help="Flag groups whose adverse rate exceeds the overall rate by more than "
            "1/THRESHOLD (default 0.8, the four-fifths rule; CREDO_FAIRNESS_THRESHOLD).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """How standings fall on groups: scores, grades, lists, measures, adverse-rate ratios.

    Adverse means on a black list or under a sanction; a group is flagged when its adverse
    rate exceeds the overall rate by more than 1/THRESHOLD (the four-fifths rule).
    """
    from credo.services.fairness import fairness_report
    from credo.settings import Settings

    limit = Settings().fairness_threshold if threshold is None else threshold
    with refusals():
        result = fairness_report(
            register(),
            by=by,
            as_of=as_of,  # type: ignore[arg-type]
            threshold=limit,
        )
    if as_json:
        typer.echo(json.dumps(result.to_json(), ensure_ascii=False, indent=2))
        return
    report = result.report
    everyone = [*report.groups, report.overall]
    typer.echo(
        f"fairness by {report.by} as of {result.as_of} ({result.source} standings, "
        f"policy {report.policy})"
    )
    typer.echo(
        "adverse = on a black list or under a sanction; flagged when the ratio to the overall "
        f"rate exceeds {report.limit:.2f} (threshold {report.threshold:g})"
    )
    typer.echo("")
    head = ["group", "subjects", "mean", "median", "adverse", "ratio", "flag"]
    rows = [head] + [
        [
            g.group,
            str(g.subjects),
            _num(g.mean_score),
            _num(g.median_score),
            _pct(g.adverse_rate),
            "-" if g.ratio is None else f"{g.ratio:.2f}",
            "FLAG" if g.flagged else "",
        ]
        for g in everyone
    ]
    for line in columns(rows):
        typer.echo(line)
    for title, names, pick in (
        ("grades", list(report.overall.grades), "grades"),
        ("lists", list(report.overall.lists), "lists"),
        ("measures", list(report.overall.measures), "measures"),
    ):
        if not names:
            continue
        typer.echo("")
        typer.echo(f"share in each of the {title}")
        table = [["group", *names]] + [
            [g.group, *(_pct(getattr(g, pick)[n]) for n in names)] for g in everyone
        ]
        for line in columns(table):
            typer.echo(line)
    if report.flagged:
        typer.echo("")
        typer.echo(f"flagged: {', '.join(report.flagged)}")
