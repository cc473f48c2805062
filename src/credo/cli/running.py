"""init | serve | demo."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from credo.cli.common import actor, app, read_text, refusals, register


@app.command("init")
def init_cmd(
    policy: Annotated[Path | None, typer.Option(help="Activate this policy too.")] = None,
) -> None:
    """Create (or upgrade) the register's database."""
    from credo.settings import Settings

    with refusals():
        reg = register()
    typer.echo(f"register ready at {Settings().resolved_database_url()}")
    if policy is not None:
        from credo.services.policies import activate_policy

        with refusals():
            result = activate_policy(
                reg,
                read_text(policy),
                actor=actor(),
                comment="activated by credo init",
                source=str(policy),
            )
        typer.echo(f"policy {result.label} is active")


@app.command("serve")
def serve_cmd(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    access_log: Annotated[
        bool,
        typer.Option(
            help="Log every request line to stderr (standing lookups are logged as inquiries "
            "in the register either way)."
        ),
    ] = True,
) -> None:
    """Serve the HTTP API (OpenAPI at /docs)."""
    import uvicorn

    with refusals():
        register()  # upgrade the schema once, before the workers start
    uvicorn.run(
        "credo.api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        access_log=access_log,
        server_header=False,  # no "server: uvicorn" on every answer: nothing to advertise
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

    with refusals():
        info = build_demo(seed=seed, subjects=subjects, records=records, echo=typer.echo)
    typer.echo("")
    typer.echo(info.instructions(port))
    if serve:
        import uvicorn

        os.environ["CREDO_HOME"] = str(info.home)
        uvicorn.run(
            "credo.api.app:create_app",
            factory=True,
            host="127.0.0.1",
            port=port,
            log_level="info",
            server_header=False,  # as `credo serve`
        )
