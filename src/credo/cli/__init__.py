"""The `credo` command line: thin commands over the services.

Exit codes: 0 success, 1 refused input (reason on stderr), 2 usage error.
"""

from __future__ import annotations

from credo.cli import imports, people, policy, report, running, simulate, standing
from credo.cli import preview as preview
from credo.cli import promotion as promotion
from credo.cli import snapshot as snapshot
from credo.cli.common import app

__all__ = [
    "app",
    "imports",
    "main",
    "people",
    "policy",
    "report",
    "running",
    "simulate",
    "standing",
]


def main() -> None:
    """Console-script entry point."""
    app()
