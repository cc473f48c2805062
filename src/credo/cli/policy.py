"""policy check | activate."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from credo.cli.common import actor, policy_app, read_text, refusals, register


@policy_app.command("check")
def policy_check(file: Path) -> None:
    """Check a policy file; print a summary or every problem with its table, entry and key."""
    from credo.services.policies import check_policy, summary_lines

    with refusals():
        policy = check_policy(read_text(file), str(file))
    for line in summary_lines(policy):
        typer.echo(line)


@policy_app.command("activate")
def policy_activate(
    file: Path,
    comment: Annotated[
        str, typer.Option("--comment", help="Why this version is activated (required).")
    ],
) -> None:
    """Store a policy version, make it the only active one, and rescore every subject."""
    from credo.services.policies import activate_policy

    text = read_text(file)
    with refusals():
        result = activate_policy(register(), text, actor=actor(), comment=comment, source=str(file))
    if result.already_active:
        typer.echo(f"policy {result.label} is already active; nothing changed")
    else:
        typer.echo(
            f"policy {result.label} is active (version #{result.version_id}); "
            f"{result.rescored} subjects rescored"
        )
