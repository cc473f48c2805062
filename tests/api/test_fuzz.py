"""The API fuzzed with schemathesis against its own OpenAPI schema, as every role (issue 6).

A bounded, derandomized run of bench/fuzz_api.py: each operation of `create_app(...)
.openapi()` gets EXAMPLES generated requests as each role (anonymous, an authority's bearer
key, a subject's, a reviewer's and an admin's session cookie) on a seeded SQLite register.
Every response must be no 5xx and conform to the schema (status code, content type, body).
The long form, with many more examples and a report of every finding, is
`.venv/bin/python bench/fuzz_api.py`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bench.fuzz_api import ROLES, Target, fuzz_operation, fuzz_target, operations

EXAMPLES = 6  # per operation and role; logins hash passwords, so keep this small
SLOW = {"/v1/auth/login", "/v1/auth/logout"}  # argon2 per example (a fuzzed logout logs in again)


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """One seeded register and app for the whole module (the fuzzer's writes accumulate,
    which is what a long-running register sees too)."""
    home: Path = tmp_path_factory.mktemp("fuzz")
    with fuzz_target(home) as fuzzed:
        yield fuzzed


@pytest.fixture(scope="module")
def by_label(target: Target) -> dict[str, Any]:
    """The schema's operations by label (`POST /v1/records`)."""
    return {op.label: op for op in operations(target)}


def _operation_labels() -> list[str]:
    """The labels of the app's operations, read at collection from an app over an engine
    that is never connected (building the schema touches no database)."""
    from sqlalchemy import create_engine

    from credo.api.app import create_app
    from credo.clock import FixedDateClock
    from credo.services.register import Register
    from tests.conftest import TODAY

    engine = create_engine("sqlite://")
    app = create_app(Register(engine=engine, clock=FixedDateClock(TODAY)))
    return sorted(
        f"{method.upper()} {path}"
        for path, methods in app.openapi()["paths"].items()
        for method in methods
    )


OPERATIONS = _operation_labels()


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("label", OPERATIONS)
def test_no_operation_answers_5xx_or_breaks_its_schema(
    target: Target, by_label: dict[str, Any], label: str, role: str
) -> None:
    operation = by_label[label]
    examples = 2 if operation.path in SLOW else EXAMPLES
    fuzz_operation(target, operation, role, examples=examples)


def test_every_operation_is_fuzzed(by_label: dict[str, Any]) -> None:
    assert sorted(by_label) == OPERATIONS
    assert len(OPERATIONS) >= 19
