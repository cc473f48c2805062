"""The `credo` command line: thin commands over the services.

Exit codes: 0 success, 1 refused input (reason on stderr), 2 usage error.
"""

from __future__ import annotations

import csv
import getpass
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated, Any, NoReturn, TextIO

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from credo.domain.errors import CredoError
from credo.services.filing import ImportReport, Reject

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="credo: an integrity register for public institutions.",
)
policy_app = typer.Typer(no_args_is_help=True, help="Check, activate and inspect policies.")
subjects_app = typer.Typer(no_args_is_help=True, help="Register the people on file.")
audit_app = typer.Typer(no_args_is_help=True, help="The hash-chained audit log.")
authority_app = typer.Typer(no_args_is_help=True, help="Authorities and their API keys.")
app.add_typer(policy_app, name="policy")
app.add_typer(subjects_app, name="subjects")
app.add_typer(audit_app, name="audit")
app.add_typer(authority_app, name="authority")

err = Console(stderr=True, highlight=False, soft_wrap=True)


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


def _fail(exc: CredoError) -> NoReturn:
    err.print(f"credo: {exc}", markup=False)
    raise typer.Exit(1)


@contextmanager
def _refusals() -> Iterator[None]:
    try:
        yield
    except CredoError as exc:
        _fail(exc)


def _register() -> Any:
    from credo.bootstrap import build_register

    return build_register()


def _parse_day(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from None


AsOf = Annotated[
    str | None,
    typer.Option("--as-of", help="Score as of this date (YYYY-MM-DD).", callback=_parse_day),
]


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        err.print(f"credo: cannot read {path}: {exc.strerror}", markup=False)
        raise typer.Exit(1) from None


# ----------------------------------------------------------------------------- policy


@policy_app.command("check")
def policy_check(file: Path) -> None:
    """Check a policy file; print a summary or every problem with its table, entry and key."""
    from credo.services.policies import check_policy, summary_lines

    with _refusals():
        policy = check_policy(_read_text(file), str(file))
    for line in summary_lines(policy):
        typer.echo(line)


@policy_app.command("activate")
def policy_activate(
    file: Path,
    comment: Annotated[str, typer.Option(help="Why this version is activated.")] = "",
) -> None:
    """Store a policy version, make it the only active one, and rescore every subject."""
    from credo.services.policies import activate_policy

    text = _read_text(file)
    with _refusals():
        result = activate_policy(
            _register(), text, actor=_actor(), comment=comment, source=str(file)
        )
    if result.already_active:
        typer.echo(f"policy {result.label} is already active; nothing changed")
    else:
        typer.echo(
            f"policy {result.label} is active (version #{result.version_id}); "
            f"{result.rescored} subjects rescored"
        )


# ----------------------------------------------------------------------------- imports


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
    with _refusals():
        kind = detect_format(file, fmt)
        register = _register()
    rejects = _RejectsFile(file)
    try:
        with file.open("rb") as stream, _progress(file, label) as advance, _refusals():
            report = run(register, stream, kind, advance, rejects)
    finally:
        rejects.close()
    typer.echo(
        f"{file.name}: {report.stored} stored, {report.duplicates} already on file, "
        f"{report.rejected} rejected"
    )
    if report.rescored:
        typer.echo(f"standings updated for {report.rescored} subjects")
    if report.rejected:
        for reject in report.first_rejects[:20]:
            err.print(f"line {reject.line}: {reject.reason}", markup=False)
        if report.rejected > 20:
            err.print(f"... and {report.rejected - 20} more", markup=False)
        err.print(f"rejected rows written to {rejects.path}", markup=False)
        raise typer.Exit(1)


FormatOpt = Annotated[
    str | None, typer.Option("--format", help="csv or jsonl (default: from the file name).")
]


@subjects_app.command("import")
def subjects_import(file: Path, fmt: FormatOpt = None) -> None:
    """Register subjects from CSV or JSON Lines (subject_id, name, kind, organisation, ...)."""
    from credo.domain.subjects import SUBJECT_FIELDS
    from credo.services.sources import read_rows
    from credo.services.subjects import import_subjects
    from credo.settings import Settings

    size = Settings().batch_size

    def run(
        register: Any, stream: Any, kind: str, advance: Any, rejects: _RejectsFile
    ) -> ImportReport:
        rows = read_rows(stream, kind, SUBJECT_FIELDS, on_bytes=advance)
        return import_subjects(
            register, rows, actor=_actor(), source=file.name, batch_size=size, on_reject=rejects
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
    from credo.services.filing import import_file
    from credo.settings import Settings

    settings = Settings()
    # Validation runs in a second process for big files, beside the database writes.
    workers = 1 if file.is_file() and file.stat().st_size > 4 * 1024 * 1024 else 0

    def run(
        register: Any, stream: Any, kind: str, advance: Any, rejects: _RejectsFile
    ) -> ImportReport:
        return import_file(
            register,
            stream,
            kind,
            authority_id=authority,
            actor=_actor(),
            source=file.name,
            chunk_bytes=settings.chunk_bytes,
            workers=workers,
            on_bytes=advance,
            on_reject=rejects,
        )

    _run_import(file, fmt, "records", run, RECORD_FIELDS)


# ----------------------------------------------------------------------------- standings


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
    from credo.services.standing import Inquirer, standings

    with _refusals():
        result = standings(
            _register(),
            subjects,
            as_of=as_of,  # type: ignore[arg-type]
            who=Inquirer(_actor(), "cli"),
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
def rescore_cmd(as_of: AsOf = None) -> None:
    """Recompute every subject's stored standing, set-based inside the database."""
    from credo.services.rescoring import rescore_everyone

    with _refusals():
        count, day = rescore_everyone(_register(), as_of)  # type: ignore[arg-type]
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
    with _refusals():
        data = subject_file(_register(), subject, actor=_actor())
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

    with _refusals():
        result = sweep(_register(), actor=_actor())
    typer.echo(f"standings brought to {result.as_of}: {result.rescored} subjects rescored")


notices_app = typer.Typer(no_args_is_help=True, help="Notices to the people on file.")
app.add_typer(notices_app, name="notices")


@notices_app.command("deliver")
def notices_deliver() -> None:
    """Send the pending notices that are due (SMTP when CREDO_SMTP_HOST is set)."""
    from credo.services.notices import deliver, sender_from_settings
    from credo.settings import Settings

    with _refusals():
        result = deliver(_register(), sender_from_settings(Settings()), limit=100_000)
    typer.echo(
        f"{result.delivered} delivered, {result.failed} to retry later, "
        f"{result.kept} kept in the register only"
    )


user_app = typer.Typer(no_args_is_help=True, help="People who log in.")
app.add_typer(user_app, name="user")


@user_app.command("add")
def user_add(
    username: str,
    role: Annotated[str, typer.Option(help="subject, reviewer, admin or authority.")],
    subject: Annotated[str | None, typer.Option(help="The subject id (role subject).")] = None,
    authority: Annotated[
        str | None, typer.Option(help="The authority id (role authority).")
    ] = None,
    password_stdin: Annotated[bool, typer.Option(help="Read the password from stdin.")] = False,
) -> None:
    """Create an account; the password is asked for (or read from stdin)."""
    from credo.services.accounts import add_user

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    with _refusals():
        user = add_user(
            _register(),
            username,
            password,
            role,
            subject_id=subject,
            authority_id=authority,
            actor=_actor(),
        )
    typer.echo(f"user {user.username} ({user.role}) created")


# ----------------------------------------------------------------------------- audit, keys


@audit_app.command("verify")
def audit_verify() -> None:
    """Recompute the hash chain and every batch digest; name the first bad entry."""
    from credo.services.audit_verify import verify_audit

    with _refusals():
        result = verify_audit(_register())
    if result.ok:
        typer.echo(
            f"audit chain intact: {result.entries} entries, {result.records} records, "
            f"{result.subjects} subjects verified"
        )
        return
    err.print(f"audit verify FAILED: {len(result.problems)} problems; the first is:", markup=False)
    for problem in result.problems[:50]:
        err.print(f"  {problem}", markup=False)
    raise typer.Exit(1)


@authority_app.command("add-key")
def authority_add_key(authority: str) -> None:
    """Create an API key for an authority; it is printed once and only its hash is stored."""
    from credo.services.keys import add_key

    with _refusals():
        key = add_key(_register(), authority, actor=_actor())
    typer.echo(key)
    err.print(
        "store this key now: credo keeps only its hash and cannot show it again", markup=False
    )


# ----------------------------------------------------------------------------- running


@app.command("init")
def init_cmd(
    policy: Annotated[Path | None, typer.Option(help="Activate this policy too.")] = None,
) -> None:
    """Create (or upgrade) the register's database."""
    from credo.settings import Settings

    with _refusals():
        register = _register()
    typer.echo(f"register ready at {Settings().resolved_database_url()}")
    if policy is not None:
        from credo.services.policies import activate_policy

        with _refusals():
            result = activate_policy(
                register,
                _read_text(policy),
                actor=_actor(),
                comment="activated by credo init",
                source=str(policy),
            )
        typer.echo(f"policy {result.label} is active")


@app.command("serve")
def serve_cmd(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
) -> None:
    """Serve the HTTP API (OpenAPI at /docs)."""
    import uvicorn

    with _refusals():
        _register()  # upgrade the schema once, before the workers start
    uvicorn.run(
        "credo.api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
    )


@app.command("demo")
def demo_cmd(
    port: Annotated[int, typer.Option(help="Port for the API.")] = 8000,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic register.")] = 2026,
    subjects: Annotated[int, typer.Option(help="Synthetic public servants.")] = 5_000,
    records: Annotated[int, typer.Option(help="Synthetic records.")] = 40_000,
    serve: Annotated[bool, typer.Option(help="Serve the API afterwards.")] = True,
) -> None:
    """A fresh embedded register with the example policy and a synthetic register, served."""
    from credo.demo import build_demo

    with _refusals():
        info = build_demo(seed=seed, subjects=subjects, records=records, echo=typer.echo)
    typer.echo("")
    typer.echo(info.instructions(port))
    if serve:
        import uvicorn

        os.environ["CREDO_HOME"] = str(info.home)
        uvicorn.run(
            "credo.api.app:create_app", factory=True, host="127.0.0.1", port=port, log_level="info"
        )


def main() -> None:
    """Console-script entry point."""
    app()
