"""What every command shares: the app, the error console, refusals, dates and the register."""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from credo.domain.errors import CredoError

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


def actor() -> str:
    """Who runs the command, as audit entries name them."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


def fail(exc: CredoError) -> NoReturn:
    """Print a refusal on stderr and exit 1."""
    err.print(f"credo: {exc}", markup=False)
    raise typer.Exit(1)


@contextmanager
def refusals() -> Iterator[None]:
    """Turn refused input into exit code 1 with the reason on stderr."""
    try:
        yield
    except CredoError as exc:
        fail(exc)


def register() -> Any:
    """The register of this machine's settings (schema upgraded on first use)."""
    from credo.bootstrap import build_register

    return build_register()


def parse_day(value: str | None) -> date | None:
    """A --as-of value, or a usage error."""
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from None


AsOf = Annotated[
    str | None,
    typer.Option("--as-of", help="Score as of this date (YYYY-MM-DD).", callback=parse_day),
]


def read_text(path: Path) -> str:
    """A file's text, or exit 1 naming it."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        err.print(f"credo: cannot read {path}: {exc.strerror}", markup=False)
        raise typer.Exit(1) from None


FormatOpt = Annotated[
    str | None, typer.Option("--format", help="csv or jsonl (default: from the file name).")
]
