"""policy check | activate | list | history | show | diff."""

from __future__ import annotations

import json
from datetime import datetime
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


def _when(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M")


@policy_app.command("list")
def policy_list(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per version.")] = False,
) -> None:
    """List every stored policy version: number, label, active marker, when, by whom, why."""
    from credo.services.policy_history import list_versions

    with refusals():
        versions = list_versions(register())
    if as_json:
        for version in versions:
            typer.echo(json.dumps(version.to_json(), ensure_ascii=False))
        return
    if not versions:
        typer.echo("no policy has been activated yet")
        return
    table = [("#", "policy", "active", "activated at", "by", "comment")] + [
        (
            str(v.id),
            v.label,
            "*" if v.active else "",
            _when(v.activated_at),
            v.activated_by,
            v.comment,
        )
        for v in versions
    ]
    widths = [max(len(row[i]) for row in table) for i in range(5)]
    for row in table:
        cells = [row[0].rjust(widths[0])] + [
            c.ljust(w) for c, w in zip(row[1:5], widths[1:], strict=True)
        ]
        typer.echo("  ".join([*cells, row[5]]).rstrip())


@policy_app.command("history")
def policy_history(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Every activation in order, re-activations included: when, by whom, what, why."""
    from credo.services.policy_history import activations

    with refusals():
        found = activations(register())
    for item in found:
        if as_json:
            typer.echo(json.dumps(item.to_json(), ensure_ascii=False))
        else:
            typer.echo(
                f"{item.at[:16].replace('T', ' ')}  #{item.version_id} {item.policy}  "
                f"(was {item.previous or '-'})  by {item.actor}: {item.comment}"
            )
    if not found and not as_json:
        typer.echo("no policy has been activated yet")


@policy_app.command("show")
def policy_show(
    version: Annotated[str, typer.Argument(help="A version number or POLICY_ID@VERSION.")],
    summary: Annotated[
        bool, typer.Option("--summary", help="A readable summary instead of the TOML text.")
    ] = False,
) -> None:
    """Print a stored policy version's TOML text exactly as activated (or its summary)."""
    from credo.domain.policy_load import load_policy
    from credo.services.policies import summary_lines
    from credo.services.policy_history import find_version

    with refusals():
        stored = find_version(register(), version)
        policy = load_policy(stored.text, stored.label) if summary else None
    if policy is None:
        typer.echo(stored.text, nl=not stored.text.endswith("\n"))
        return
    state = "active" if stored.active else "not active"
    typer.echo(
        f"version #{stored.id} ({state}), activated {_when(stored.activated_at)} "
        f"by {stored.activated_by}: {stored.comment}"
    )
    for line in summary_lines(policy):
        typer.echo(line)


@policy_app.command("diff")
def policy_diff(
    old: Annotated[str, typer.Argument(help="A version number, POLICY_ID@VERSION or a file.")],
    new: Annotated[str, typer.Argument(help="A version number, POLICY_ID@VERSION or a file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """What changed from OLD to NEW: categories, grades, lists, measures, purposes, header."""
    from credo.services.policy_history import diff_versions

    with refusals():
        before, after, diff = diff_versions(register(), old, new)
    if as_json:
        data = {"old_source": before.source, "new_source": after.source, **diff.to_json()}
        typer.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    typer.echo(f"--- {before.source}")
    typer.echo(f"+++ {after.source}")
    for line in diff.lines():
        typer.echo(line)
