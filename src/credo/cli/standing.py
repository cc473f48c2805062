"""standing | rescore | export | sweep."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from credo.cli.common import AsOf, actor, app, err, refusals, register


def _print_standing(data: dict[str, Any]) -> None:
    typer.echo(f"{data['subject_id']}  as of {data['as_of']}  ({data['policy']})")
    typer.echo(f"  score    {data['score']}")
    typer.echo(f"  grade    {data['grade']}")
    typer.echo(f"  lists    {', '.join(data['lists']) or '-'}")
    typer.echo(f"  measures {', '.join(data['measures']) or '-'}")
    if not data["explanation"]:
        typer.echo("  no effective records: the base score applies")
    for line in data["explanation"]:
        capped = "  (capped)" if line["capped"] else ""
        typer.echo(
            f"  {line['points']:+5d}  {line['category']:<28} {line['authority']}/"
            f"{line['reference']}  until {line['effective_until']}{capped}"
        )


@app.command("standing")
def standing_cmd(
    subjects: Annotated[list[str], typer.Argument(help="Subject ids.")],
    as_of: AsOf = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Show subjects' standings with the explanation of every point (logged as inquiries)."""
    from credo.services.inquiries import Inquirer
    from credo.services.standing import standings

    with refusals():
        result = standings(
            register(),
            subjects,
            as_of=as_of,  # type: ignore[arg-type]
            who=Inquirer(actor(), "cli"),
        )
    for i, standing in enumerate(result):
        data = standing.to_json()
        if as_json:
            typer.echo(json.dumps(data, ensure_ascii=False))
        else:
            if i:
                typer.echo("")
            _print_standing(data)


@app.command("rescore")
def rescore_cmd(
    as_of: AsOf = None,
    engine: Annotated[
        str, typer.Option("--engine", help="db (inside the database) or spark.")
    ] = "db",
    master: Annotated[
        str, typer.Option("--master", help="Spark master URL (spark engine).")
    ] = "local[2]",
    snapshot: Annotated[
        str | None,
        typer.Option("--snapshot", help="Snapshot DIR or URI (spark; default: a fresh one)."),
    ] = None,
) -> None:
    """Recompute every subject's stored standing, set-based inside the database or on Spark."""
    if engine not in ("db", "spark"):
        raise typer.BadParameter("use db or spark", param_hint="--engine")
    if engine == "spark":
        from credo.services.spark_engine import rescore_on_spark

        with refusals():
            done = rescore_on_spark(
                register(),
                master=master,
                snapshot=snapshot,
                as_of=as_of,  # type: ignore[arg-type]
                actor=actor(),
                log=lambda message: err.print(f"credo: {message}", markup=False),
            )
        typer.echo(
            f"{done.subjects} subjects rescored on Spark as of {done.as_of} "
            f"({done.rescored_in_database} changed since the snapshot rescored in the database)"
        )
        return
    from credo.services.rescoring import rescore_everyone

    with refusals():
        count, day = rescore_everyone(register(), as_of)  # type: ignore[arg-type]
    typer.echo(f"{count} subjects rescored as of {day}")


@app.command("export")
def export_cmd(
    subject: str,
    fmt: Annotated[str, typer.Option("--format", help="json, html or pdf.")] = "json",
    output: Annotated[Path | None, typer.Option(help="Write to this file (pdf needs one).")] = None,
) -> None:
    """Print (or write) a subject's whole file: records, standing, history, cases, inquiries."""
    from credo.services.documents import file_html, file_pdf
    from credo.services.export import subject_file

    if fmt not in ("json", "html", "pdf"):
        raise typer.BadParameter("use json, html or pdf", param_hint="--format")
    if fmt == "pdf" and output is None:
        raise typer.BadParameter("a PDF needs --output FILE", param_hint="--output")
    with refusals():
        data = subject_file(register(), subject, actor=actor())
    if fmt == "pdf":
        assert output is not None
        output.write_bytes(file_pdf(data))
        typer.echo(f"wrote {output}")
        return
    text = file_html(data) if fmt == "html" else json.dumps(data, ensure_ascii=False, indent=2)
    if output is not None:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {output}")
    else:
        typer.echo(text)


@app.command("sweep")
def sweep_cmd() -> None:
    """Rescore only the subjects whose records ended (or objections fell due) since the last
    rescore, and write their notices."""
    from credo.services.sweep import sweep

    with refusals():
        result = sweep(register(), actor=actor())
    typer.echo(f"standings brought to {result.as_of}: {result.rescored} subjects rescored")
