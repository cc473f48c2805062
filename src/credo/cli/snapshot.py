"""snapshot: write the register's scoring tables as Parquet for Spark and other engines."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress, TextColumn, TimeElapsedColumn

from credo.cli.common import app, err, refusals, register


@contextmanager
def snapshot_progress() -> Iterator[Callable[[str, int], object]]:
    """Rows written so far per table on stderr (silent when stderr is not a terminal)."""
    if not sys.stderr.isatty():
        yield lambda table, rows: None
        return
    columns = (TextColumn("snapshot {task.description}: {task.completed:,} rows"),)
    with Progress(*columns, TimeElapsedColumn(), console=err, transient=True) as bar:
        tasks: dict[str, object] = {}

        def advance(table: str, rows: int) -> None:
            if table not in tasks:
                tasks[table] = bar.add_task(table, total=None)
            bar.update(tasks[table], completed=rows)  # type: ignore[arg-type]

        yield advance


@app.command("snapshot")
def snapshot_cmd(
    directory: Annotated[Path, typer.Argument(help="A new or empty directory to write.")],
    chunk: Annotated[
        int, typer.Option("--chunk", min=1_000, help="Rows read and written at a time.")
    ] = 100_000,
) -> None:
    """Write a Parquet snapshot (subjects, records, objections, policy, manifest) for
    `credo rescore --engine spark --snapshot DIR`."""
    from credo.services.spark_engine import take_snapshot

    with refusals(), snapshot_progress() as progress:
        manifest = take_snapshot(register(), directory, chunk=chunk, progress=progress)
    counts = ", ".join(f"{manifest.rows(name):,} {name}" for name in ("subjects", "records"))
    typer.echo(
        f"snapshot of {counts}, {manifest.rows('cases'):,} objections "
        f"({manifest.data['policy']['label']}, as of {manifest.as_of}) written to {directory}"
    )
