"""subjects import | import: bulk files with progress, per-row refusals and a rejects file."""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from credo.cli.common import FormatOpt, actor, app, err, refusals, register, subjects_app
from credo.services.importing import ImportReport, Reject


@contextmanager
def _progress(path: Path, label: str) -> Iterator[Callable[[int], None]]:
    if not sys.stderr.isatty():
        yield lambda n: None
        return
    columns = (
        TextColumn(f"{label} {path.name}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=False) as bar:
        task = bar.add_task(label, total=path.stat().st_size)
        yield lambda n: bar.advance(task, n)


class _RejectsFile:
    """Writes refused rows beside the input as FILE.rejects.csv, created on the first one."""

    def __init__(self, source: Path) -> None:
        self.path = source.with_name(source.name + ".rejects.csv")
        self.handle: TextIO | None = None
        self.writer: Any = None
        if self.path.exists():
            self.path.unlink()

    def __call__(self, reject: Reject) -> None:
        if self.writer is None:
            self.handle = self.path.open("w", newline="", encoding="utf-8")
            self.writer = csv.writer(self.handle)
            self.writer.writerow(["line", "reason", "row"])
        self.writer.writerow([reject.line, reject.reason, reject.raw])

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()


def _run_import(
    file: Path,
    fmt: str | None,
    label: str,
    run: Callable[[Any, Any, str, Any, _RejectsFile], ImportReport],
    allowed: tuple[str, ...],
) -> None:
    from credo.services.sources import detect_format

    if not file.is_file():
        err.print(f"credo: {file} is not a readable file", markup=False)
        raise typer.Exit(1)
    with refusals():
        kind = detect_format(file, fmt)
        reg = register()
    rejects = _RejectsFile(file)
    try:
        with file.open("rb") as stream, _progress(file, label) as advance, refusals():
            report = run(reg, stream, kind, advance, rejects)
    finally:
        rejects.close()
    typer.echo(
        f"{file.name}: {report.stored} stored, {report.duplicates} already on file, "
        f"{report.rejected} rejected"
    )
    if report.rescored:
        typer.echo(f"standings updated for {report.rescored} subjects")
    if report.snapshot:
        typer.echo(f"policy preview snapshot: {report.snapshot}")
    if report.rejected:
        for reject in report.first_rejects[:20]:
            err.print(f"line {reject.line}: {reject.reason}", markup=False)
        if report.rejected > 20:
            err.print(f"... and {report.rejected - 20} more", markup=False)
        err.print(f"rejected rows written to {rejects.path}", markup=False)
        raise typer.Exit(1)


@subjects_app.command("import")
def subjects_import(file: Path, fmt: FormatOpt = None) -> None:
    """Register subjects from CSV or JSON Lines (subject_id, name, kind, organisation, ...)."""
    from credo.domain.subjects import SUBJECT_FIELDS
    from credo.services.sources import read_rows
    from credo.services.subjects import import_subjects
    from credo.settings import Settings

    size = Settings().batch_size

    def run(reg: Any, stream: Any, kind: str, advance: Any, rejects: _RejectsFile) -> ImportReport:
        rows = read_rows(stream, kind, SUBJECT_FIELDS, on_bytes=advance)
        return import_subjects(
            reg, rows, actor=actor(), source=file.name, batch_size=size, on_reject=rejects
        )

    _run_import(file, fmt, "subjects", run, SUBJECT_FIELDS)


@app.command("import")
def import_records_cmd(
    file: Path,
    authority: Annotated[str, typer.Option("--authority", help="The filing authority's id.")],
    fmt: FormatOpt = None,
) -> None:
    """File records from CSV or JSON Lines for one authority; re-running stores nothing twice."""
    from credo.domain.filing import RECORD_FIELDS
    from credo.services.importing import import_file
    from credo.settings import Settings

    settings = Settings()
    # Validation runs in a second process for big files, beside the database writes.
    workers = 1 if file.is_file() and file.stat().st_size > 4 * 1024 * 1024 else 0

    def run(reg: Any, stream: Any, kind: str, advance: Any, rejects: _RejectsFile) -> ImportReport:
        return import_file(
            reg,
            stream,
            kind,
            authority_id=authority,
            actor=actor(),
            source=file.name,
            chunk_bytes=settings.chunk_bytes,
            commit_rows=settings.commit_rows,
            workers=workers,
            on_bytes=advance,
            on_reject=rejects,
        )

    _run_import(file, fmt, "records", run, RECORD_FIELDS)
