"""Due-process commands (`credo user add`, `sweep`, `notices deliver`, `export`) on an embedded
register under a temporary CREDO_HOME, with the clock pinned by CREDO_TODAY."""

from __future__ import annotations

import csv
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select
from typer.testing import CliRunner, Result

from credo.bootstrap import build_register
from credo.cli import app
from credo.domain.errors import AuthenticationError
from credo.services.accounts import login
from credo.services.register import Register
from credo.settings import Settings
from credo.store.tables import notices, standings, users
from tests.factories import WORKED_POLICY

PASSWORD = "secret-password-1"


class Credo:
    """Runs `credo ...` in-process with its own CREDO_HOME and a pinned clock."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.runner = CliRunner()

    def __call__(
        self,
        *args: str,
        today: str = "2026-03-15",
        input: str | None = None,
        env: dict[str, str | None] | None = None,
    ) -> Result:
        base: dict[str, str | None] = {
            "CREDO_HOME": str(self.home),
            "CREDO_TODAY": today,
            "CREDO_DATABASE_URL": None,
            "CREDO_SMTP_HOST": None,
        }
        return self.runner.invoke(
            app, list(args), input=input, env={**base, **(env or {})}, catch_exceptions=False
        )

    def register(self) -> Register:
        return build_register(Settings(home=self.home))


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return result


def write_csv(path: Path, columns: list[str], items: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(items)
    return path


@pytest.fixture
def credo(tmp_path: Path) -> Credo:
    """A register with the worked policy, three people and a record each for two of them."""
    cli = Credo(tmp_path / "home")
    policy = tmp_path / "worked.toml"
    policy.write_text(WORKED_POLICY, encoding="utf-8")
    ok(cli("policy", "activate", "--comment", "test", str(policy)))
    people = write_csv(
        tmp_path / "people.csv",
        ["subject_id", "name", "organisation", "email"],
        [
            ["s-001", "Ada Lovelace", "Tax Bureau", "ada@example.org"],
            ["s-002", "Bo Yang", "Tax Bureau", "bo@example.org"],
            ["s-003", "Cy Young", "Tax Bureau", ""],
        ],
    )
    ok(cli("subjects", "import", str(people)))
    columns = ["reference", "subject_id", "category", "decided_on", "legal_basis", "summary"]
    court = write_csv(
        tmp_path / "court.csv",
        columns,
        [["2026-EX-17", "s-001", "court.order_defiance", "2026-01-10", "Law 1", "Defied"]],
    )
    ok(cli("import", str(court), "--authority", "city-court"))
    tax = write_csv(
        tmp_path / "tax.csv",
        columns,
        [["TAX-7", "s-002", "tax.arrears", "2025-04-01", "Law 2", "Arrears"]],
    )
    ok(cli("import", str(tax), "--authority", "city-tax"))
    return cli


def rows_of(credo: Credo, table: Any) -> list[Any]:
    register = credo.register()
    try:
        with register.read() as conn:
            return list(conn.execute(select(table)).all())
    finally:
        register.engine.dispose()


# ----------------------------------------------------------------------------- user add


def test_user_add_creates_a_subject_account_with_the_password_from_stdin(credo: Credo) -> None:
    result = ok(
        credo(
            "user",
            "add",
            "ada",
            "--role",
            "subject",
            "--subject",
            "s-001",
            "--password-stdin",
            input=f"{PASSWORD}\n",
        )
    )
    assert "user ada (subject) created" in result.stdout
    assert PASSWORD not in result.stdout + result.stderr
    [user] = rows_of(credo, users)
    assert (user.username, user.role, user.subject_id) == ("ada", "subject", "s-001")
    assert PASSWORD not in user.password_hash
    register = credo.register()
    try:
        token, who = login(register, "ada", PASSWORD, client="test")
        assert token and who.subject_id == "s-001"
        with pytest.raises(AuthenticationError):
            login(register, "ada", PASSWORD + "\n", client="test")
    finally:
        register.engine.dispose()
    again = credo(
        "user", "add", "ada", "--role", "reviewer", "--password-stdin", input=f"{PASSWORD}\n"
    )
    assert again.exit_code == 1
    assert "taken" in again.stderr


def test_user_add_refuses_a_subject_account_without_its_subject(credo: Credo) -> None:
    result = credo("user", "add", "ada", "--role", "subject", "--password-stdin", input="x" * 12)
    assert result.exit_code == 1
    assert "subject" in result.stderr
    assert rows_of(credo, users) == []


def test_user_add_refuses_an_unknown_role(credo: Credo) -> None:
    result = credo("user", "add", "ada", "--role", "wizard", "--password-stdin", input="x" * 12)
    assert result.exit_code == 1
    assert "wizard" in result.stderr
    assert rows_of(credo, users) == []


def test_user_add_refuses_an_unregistered_subject_and_a_short_password(credo: Credo) -> None:
    unknown = credo(
        "user",
        "add",
        "zed",
        "--role",
        "subject",
        "--subject",
        "s-999",
        "--password-stdin",
        input=f"{PASSWORD}\n",
    )
    assert unknown.exit_code == 1
    assert "s-999" in unknown.stderr
    short = credo("user", "add", "zed", "--role", "admin", "--password-stdin", input="short\n")
    assert short.exit_code == 1
    assert "10 characters" in short.stderr
    assert rows_of(credo, users) == []


# ----------------------------------------------------------------------------- sweep


def test_sweep_brings_standings_to_today(credo: Credo) -> None:
    same_day = ok(credo("sweep"))
    assert same_day.stdout.strip() == "standings brought to 2026-03-15: 0 subjects rescored"
    before = {r.subject_id: r for r in rows_of(credo, standings)}
    assert before["s-002"].score == 940
    later = ok(credo("sweep", today="2026-04-05"))  # the tax arrears ended on 2026-04-01
    assert later.stdout.strip() == "standings brought to 2026-04-05: 1 subjects rescored"
    after = {r.subject_id: r for r in rows_of(credo, standings)}
    assert (after["s-002"].score, after["s-002"].measures) == (1000, "")
    assert after["s-001"] == before["s-001"]
    again = ok(credo("sweep", today="2026-04-05"))
    assert "0 subjects rescored" in again.stdout


# ----------------------------------------------------------------------------- notices


def test_notices_deliver_without_smtp_keeps_everything_in_the_register(credo: Credo) -> None:
    pending = [n for n in rows_of(credo, notices) if n.status == "pending"]
    assert len(pending) >= 2
    result = ok(credo("notices", "deliver"))
    assert result.stdout.strip() == (
        f"0 delivered, 0 to retry later, {len(pending)} kept in the register only"
    )
    assert {n.status for n in rows_of(credo, notices)} == {"stored"}
    again = ok(credo("notices", "deliver"))
    assert again.stdout.strip() == "0 delivered, 0 to retry later, 0 kept in the register only"


class Inbox:
    def __init__(self) -> None:
        self.recipients: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.recipients.extend(envelope.rcpt_tos)
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[int, Inbox]]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield port, inbox
    controller.stop()


def test_notices_deliver_mails_through_the_configured_smtp_server(
    credo: Credo, smtp: tuple[int, Inbox]
) -> None:
    port, inbox = smtp
    every = rows_of(credo, notices)
    mailed = [n for n in every if n.subject_id in ("s-001", "s-002")]
    env = {"CREDO_SMTP_HOST": "127.0.0.1", "CREDO_SMTP_PORT": str(port)}
    result = ok(credo("notices", "deliver", env=env))
    assert result.stdout.strip() == (
        f"{len(mailed)} delivered, 0 to retry later, {len(every) - len(mailed)} kept in the "
        "register only"
    )
    assert sorted(inbox.recipients) == sorted(
        {"s-001": "ada@example.org", "s-002": "bo@example.org"}[n.subject_id] for n in mailed
    )


# ----------------------------------------------------------------------------- export


def test_export_html_prints_the_subjects_file(credo: Credo) -> None:
    result = ok(credo("export", "s-001", "--format", "html"))
    assert "<html" in result.stdout.lower()
    assert "Ada Lovelace" in result.stdout
    assert "2026-EX-17" in result.stdout


def test_export_json_is_the_default(credo: Credo) -> None:
    data = json.loads(ok(credo("export", "s-001")).stdout)
    assert data["subject"]["name"] == "Ada Lovelace"
    assert [r["reference"] for r in data["records"]] == ["2026-EX-17"]
    assert data["standing"]["lists"] == ["dishonest"]


def test_export_pdf_writes_a_pdf_file(credo: Credo, tmp_path: Path) -> None:
    target = tmp_path / "f.pdf"
    result = ok(credo("export", "s-001", "--format", "pdf", "--output", str(target)))
    assert str(target) in result.stdout
    content = target.read_bytes()
    assert content.startswith(b"%PDF")
    assert len(content) > 500


def test_export_pdf_without_output_is_a_usage_error(credo: Credo, tmp_path: Path) -> None:
    result = credo("export", "s-001", "--format", "pdf")
    assert result.exit_code == 2
    assert "--output" in result.stderr
    assert "%PDF" not in result.stdout


def test_export_refuses_an_unknown_format_and_an_unknown_subject(credo: Credo) -> None:
    assert credo("export", "s-001", "--format", "xml").exit_code == 2
    missing = credo("export", "s-999")
    assert missing.exit_code == 1
    assert "s-999" in missing.stderr
