"""Fuzz credo's HTTP API with schemathesis against its own OpenAPI schema, as every role.

The app is `create_app(register)` over a seeded SQLite register (the worked policy, three
people with records, an open objection with an attachment, a repair request); each
operation is called with generated requests under each role's credentials: anonymous, an
authority's bearer key, and the session cookies of a subject, a reviewer and an admin.
Every response is checked: no 5xx, and status code, content type and body conform to the
schema. The test suite runs this in a bounded form (tests/api/test_fuzz.py); here it runs
long and prints every distinct finding:

    .venv/bin/python bench/fuzz_api.py                      # 200 examples per operation and role
    .venv/bin/python bench/fuzz_api.py --examples 2000 --seed 7 --only /v1/me

Exit status: 0 when nothing was found, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import hypothesis
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: the repository root holds `tests`
    sys.path.insert(0, str(ROOT))

from tests.factories import file_rows, record, seed_register  # noqa: E402

from credo.api.app import create_app  # noqa: E402
from credo.api.deps import SESSION_COOKIE  # noqa: E402
from credo.bootstrap import build_register  # noqa: E402
from credo.clock import FixedDateClock  # noqa: E402
from credo.services.accounts import add_user, login  # noqa: E402
from credo.services.cases import Attachment, object_to_record, request_repair  # noqa: E402
from credo.services.keys import add_key  # noqa: E402
from credo.services.register import Register  # noqa: E402
from credo.settings import Settings  # noqa: E402

TODAY = date(2026, 3, 15)
PASSWORD = "fuzzing-password-1"
PEOPLE = {"subject": "wang.wei", "reviewer": "li.reviewer", "admin": "zhao.admin"}
ROLES = ("anonymous", "authority", "subject", "reviewer", "admin")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@dataclass
class Target:
    """The app under fuzzing, its register and how each role authenticates."""

    app: FastAPI
    register: Register
    keys: dict[str, str]
    sessions: dict[str, str] = field(default_factory=dict)

    def credentials(self, role: str) -> dict[str, Any]:
        """Headers and cookies for one role (`anonymous` sends none)."""
        if role == "authority":
            return {"headers": {"Authorization": f"Bearer {self.keys['city-personnel']}"}}
        if role in PEOPLE:
            return {"cookies": {SESSION_COOKIE: self.sessions[role]}}
        return {}

    def log_in(self, role: str) -> None:
        """A fresh session for a person's role (a fuzzed logout may end the old one)."""
        token, _ = login(self.register, PEOPLE[role], PASSWORD, client="fuzz", hours=8)
        self.sessions[role] = token


def seed(register: Register) -> dict[str, str]:
    """The worked policy, three people, records, cases and accounts; returns API keys."""
    seed_register(register)
    court = [
        record("C-1", "s-001", "court.order_defiance", "2026-01-10"),
        record("C-2", "s-001", "court.order_defiance", "2026-03-01"),
        record("C-3", "s-002", "court.order_defiance", "2026-02-01"),
    ]
    file_rows(register, "city-court", court)
    file_rows(register, "city-tax", [record("T-1", "s-001", "tax.arrears", "2026-02-01")])
    evidence = Attachment("receipt.pdf", "application/pdf", b"%PDF-1.4 receipt")
    object_to_record(register, "s-001", 1, "I complied on 3 March", evidence)
    request_repair(register, "s-001", 2, "Paid in full", None)
    add_user(register, PEOPLE["subject"], PASSWORD, "subject", subject_id="s-001", actor="fuzz")
    add_user(register, PEOPLE["reviewer"], PASSWORD, "reviewer", actor="fuzz")
    add_user(register, PEOPLE["admin"], PASSWORD, "admin", actor="fuzz")
    return {a: add_key(register, a, actor="fuzz") for a in ("city-personnel", "city-court")}


@contextmanager
def fuzz_target(home: Path, database_url: str | None = None) -> Iterator[Target]:
    """A seeded register (SQLite under `home`, or an empty database at `database_url`),
    served by a fresh app."""
    settings = Settings(home=home, database_url=database_url or f"sqlite:///{home}/credo.sqlite3")
    register = build_register(settings, clock=FixedDateClock(TODAY))
    try:
        target = Target(create_app(register), register, seed(register))
        for role in PEOPLE:
            target.log_in(role)
        yield target
    finally:
        register.engine.dispose()


@dataclass
class Finding:
    """One distinct problem: which operation, as whom, what went wrong, how to reproduce."""

    operation: str
    role: str
    problem: str
    reproduce: str


def operations(target: Target, only: str | None = None) -> list[Any]:
    """The schema's operations (optionally those whose path starts with `only`)."""
    schema = schemathesis.openapi.from_dict(target.app.openapi())
    found = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if only is None or operation.path.startswith(only):
            found.append(operation)
    return found


def fuzz_operation(
    target: Target,
    operation: Any,
    role: str,
    *,
    examples: int,
    seed: int | None = None,
    on_finding: Callable[[Finding], None] | None = None,
) -> None:
    """Send `examples` generated requests to one operation as one role.

    Without `on_finding` the first problem raises (a test); with it, every problem is
    reported and generation goes on (the long run).
    """
    credentials = target.credentials(role)
    logout = operation.path == "/v1/auth/logout"

    @hypothesis.settings(
        max_examples=examples,
        derandomize=seed is None,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(case=operation.as_strategy())
    def run(case: Any) -> None:
        try:
            response = case.call(app=target.app, **credentials)
            case.validate_response(response, checks=CHECKS)
        except (Exception, FailureGroup) as exc:
            if on_finding is None:
                raise
            on_finding(Finding(operation.label, role, _summary(exc), _reproduce(case)))
        finally:
            if logout and role in PEOPLE:
                target.log_in(role)
                credentials.update(target.credentials(role))

    if seed is not None:
        run = hypothesis.seed(seed)(run)
    run()


def _summary(exc: BaseException) -> str:
    """A finding's text: the check's own message, or the crash's last frames."""
    text = str(exc).strip()
    if not text or type(exc).__name__ not in ("FailureGroup", "CheckFailed"):
        text = "".join(traceback.format_exception(exc)[-6:])
    return text[:2000]


def _reproduce(case: Any) -> str:
    try:
        return str(case.as_curl_command())
    except Exception:  # some generated cases cannot be written as curl
        return repr(case)


def _signature(finding: Finding) -> str:
    """What makes two findings the same problem (the first line of the message)."""
    first = finding.problem.strip().splitlines()[0] if finding.problem.strip() else ""
    return f"{finding.operation}|{first[:200]}"


def main(argv: list[str] | None = None) -> int:
    """Run the long fuzz and print every distinct finding."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=200, help="per operation and role")
    parser.add_argument(
        "--seed", type=int, default=None, help="random seed (default: derandomized)"
    )
    parser.add_argument("--roles", default=",".join(ROLES), help="comma-separated roles")
    parser.add_argument("--only", default=None, help="only paths starting with this prefix")
    parser.add_argument(
        "--database-url",
        default=None,
        help="an empty database to seed instead of a temporary SQLite file (e.g. PostgreSQL)",
    )
    args = parser.parse_args(argv)
    findings: dict[str, tuple[Finding, int]] = {}

    def keep(finding: Finding) -> None:
        key = _signature(finding)
        first, count = findings.get(key, (finding, 0))
        findings[key] = (first, count + 1)

    started = time.perf_counter()
    calls = 0
    with (
        tempfile.TemporaryDirectory(prefix="credo-fuzz-") as home,
        fuzz_target(Path(home), args.database_url) as target,
    ):
        ops = operations(target, args.only)
        roles = [r for r in args.roles.split(",") if r]
        print(f"fuzzing {len(ops)} operations as {', '.join(roles)}, {args.examples} examples each")
        for operation in ops:
            for role in roles:
                before = len(findings)
                t0 = time.perf_counter()
                fuzz_operation(
                    target,
                    operation,
                    role,
                    examples=args.examples,
                    seed=args.seed,
                    on_finding=keep,
                )
                calls += args.examples
                new = len(findings) - before
                print(
                    f"  {operation.label:55} {role:10} {time.perf_counter() - t0:6.1f}s"
                    + (f"  {new} new finding(s)" if new else "")
                )
    elapsed = time.perf_counter() - started
    print(
        f"\n{calls} generated requests at most, {elapsed:.0f}s, {len(findings)} distinct findings"
    )
    for n, (finding, count) in enumerate(findings.values(), 1):
        print(f"\n--- {n}. {finding.operation} as {finding.role} ({count} times)")
        print(finding.problem)
        print(f"reproduce: {finding.reproduce}")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
