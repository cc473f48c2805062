"""notices deliver | user add | audit verify | authority add-key | backup | restore."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from credo.cli.common import actor, app, audit_app, authority_app, err, refusals, register

notices_app = typer.Typer(no_args_is_help=True, help="Notices to the people on file.")
app.add_typer(notices_app, name="notices")


@notices_app.command("deliver")
def notices_deliver() -> None:
    """Send the pending notices that are due (SMTP when CREDO_SMTP_HOST is set)."""
    from credo.services.notices import deliver, sender_from_settings
    from credo.settings import Settings

    with refusals():
        result = deliver(register(), sender_from_settings(Settings()), limit=100_000)
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
    with refusals():
        user = add_user(
            register(),
            username,
            password,
            role,
            subject_id=subject,
            authority_id=authority,
            actor=actor(),
        )
    typer.echo(f"user {user.username} ({user.role}) created")


# ----------------------------------------------------------------------------- audit, keys


@audit_app.command("verify")
def audit_verify() -> None:
    """Recompute the hash chain and every batch digest; name the first bad entry."""
    from credo.services.audit_verify import verify_audit

    with refusals():
        result = verify_audit(register())
    if result.ok:
        typer.echo(
            f"audit chain intact: {result.entries} entries, {result.records} records, "
            f"{result.subjects} subjects, {result.inquiries} inquiries verified"
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

    with refusals():
        key = add_key(register(), authority, actor=actor())
    typer.echo(key)
    err.print(
        "store this key now: credo keeps only its hash and cannot show it again", markup=False
    )


# ----------------------------------------------------------------------------- running


@app.command("backup")
def backup_cmd(
    path: Annotated[Path, typer.Argument(help="The backup file to create (never overwritten).")],
) -> None:
    """Copy the embedded (SQLite) register to PATH while it stays in use (online backup)."""
    from credo.services.backup import backup_register

    with refusals():
        copied = backup_register(register(), path)
    typer.echo(
        f"backed up to {copied.path}: {copied.bytes:,} bytes, audit entries up to "
        f"#{copied.audit_head}"
    )


@app.command("restore")
def restore_cmd(
    path: Annotated[Path, typer.Argument(help="A file written by `credo backup`.")],
    replace: Annotated[
        bool,
        typer.Option("--replace", help="Replace a register that already holds records."),
    ] = False,
) -> None:
    """Restore the embedded register from PATH, once PATH passes `credo audit verify`."""
    from credo.bootstrap import build_register
    from credo.services.backup import restore_register

    with refusals():
        verification = restore_register(build_register(migrate=False), path, replace=replace)
    typer.echo(
        f"restored from {path}: audit chain intact: {verification.entries} entries, "
        f"{verification.records} records, {verification.subjects} subjects, "
        f"{verification.inquiries} inquiries verified"
    )


@app.command("partition")
def partition_cmd(
    partitions: Annotated[
        int, typer.Option(help="Hash partitions per table (one modulus for all of them).")
    ] = 16,
) -> None:
    """Hash-partition a PostgreSQL register's subject-keyed tables by subject (once)."""
    import time

    from credo.services.partitioning import partition
    from credo.store.partitions import Partitioned

    started = time.perf_counter()

    def moved(item: Partitioned) -> None:
        err.print(
            f"  {item.table}: {item.rows:,} rows into {item.partitions} partitions "
            f"({time.perf_counter() - started:.1f} s)",
            markup=False,
        )

    with refusals():
        done = partition(register(), partitions, actor=actor(), progress=moved)
    typer.echo(
        f"partitioned {len(done)} tables by subject into {partitions} partitions each "
        f"({sum(item.rows for item in done):,} rows, {time.perf_counter() - started:.1f} s)"
    )
