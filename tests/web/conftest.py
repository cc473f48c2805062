"""Fixture strategy for the page tests through HTTP (no browser).

- `web` is the real app over the real `register` (SQLite and PostgreSQL, see
  tests/conftest.py), seeded with the worked policy, subjects s-001..s-003, two records on
  s-001, and one account per role. Requests go through fastapi's TestClient.
- The clock is a `MovableClock` (overriding tests/conftest.py's `clock`), so a test can let
  half an hour pass and see the session's idle timeout.
- `web.login(user)` logs in through the login form, CSRF token and all.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
from fastapi.testclient import TestClient

from credo.api.app import create_app
from credo.services.accounts import add_user
from credo.services.register import Register
from tests.conftest import TODAY
from tests.factories import file_rows, record, seed_register

PASSWORDS = {
    "ada": ("subject-pass-1", "subject", "s-001", None),
    "rev": ("reviewer-pass-1", "reviewer", None, None),
    "root": ("admin-pass-123", "admin", None, None),
    "court": ("court-pass-123", "authority", None, "city-court"),
}
CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')


class MovableClock:
    """A clock whose instant tests move forward; today is the instant's UTC date."""

    def __init__(self, start: datetime) -> None:
        self.instant = start

    def now(self) -> datetime:
        """The current instant."""
        return self.instant

    def today(self) -> date:
        """The instant's date."""
        return self.instant.date()

    def advance(self, delta: timedelta) -> None:
        """Let time pass."""
        self.instant += delta


@pytest.fixture
def clock() -> MovableClock:
    """Noon on TODAY, movable."""
    return MovableClock(datetime.combine(TODAY, datetime.min.time(), UTC) + timedelta(hours=12))


@dataclass
class Web:
    """The app under test, its register and clock."""

    register: Register
    client: TestClient
    clock: MovableClock

    def csrf(self, path: str) -> str:
        """The CSRF token of the forms on a page."""
        response = self.client.get(path)
        assert response.status_code == 200, response.text
        found = CSRF.search(response.text)
        assert found, f"no csrf_token on {path}"
        return found.group(1)

    def login(self, username: str) -> httpx.Response:
        """Log in through the form."""
        token = self.csrf("/login")
        return self.client.post(
            "/login",
            data={"username": username, "password": PASSWORDS[username][0], "csrf_token": token},
            follow_redirects=False,
        )


@pytest.fixture
def web(register: Register, clock: MovableClock) -> Iterator[Web]:
    """A seeded register served over HTTP with one account per role."""
    seed_register(register)
    file_rows(
        register,
        "city-court",
        [record("C-1", "s-001", "court.order_defiance", date(2026, 1, 10))],
    )
    file_rows(register, "city-tax", [record("T-1", "s-001", "tax.arrears", date(2025, 6, 1))])
    for username, (password, role, subject_id, authority_id) in PASSWORDS.items():
        add_user(
            register,
            username,
            password,
            role,
            subject_id=subject_id,
            authority_id=authority_id,
            actor="test",
        )
    with TestClient(create_app(register, session_hours=72)) as client:
        yield Web(register, client, clock)
