"""Fixture strategy for the HTTP API tests.

- `api` is the real app over the real `register` (SQLite and PostgreSQL, see
  tests/conftest.py), seeded with the worked policy and subjects s-001..s-003, with one
  API key each for city-court, city-tax and city-personnel. Requests go through HTTP
  with fastapi's TestClient; nothing below the app is mocked.
- `api.auth(authority)` gives the Authorization header; `api.count(table)` counts stored
  rows, so every refusal can be checked to have stored nothing.
- `assert_problem` checks the problem+json contract (RFC 9457) of an error response.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from credo.api.app import create_app
from credo.services.keys import add_key
from credo.services.register import Register
from tests.factories import seed_register

KEYED_AUTHORITIES = ("city-court", "city-tax", "city-personnel")
PROBLEM = "application/problem+json"


@dataclass
class Api:
    """The app under test, its register and one API key per keyed authority."""

    register: Register
    client: TestClient
    keys: dict[str, str]

    def auth(self, authority: str) -> dict[str, str]:
        """The Authorization header of an authority's key."""
        return {"Authorization": f"Bearer {self.keys[authority]}"}

    def count(self, table: str, where: str = "", **params: Any) -> int:
        """Rows in a table of the register (optionally filtered by a SQL condition)."""
        sql = f"SELECT count(*) FROM {table}" + (f" WHERE {where}" if where else "")
        with self.register.engine.connect() as conn:
            return int(conn.execute(text(sql), params).scalar_one())

    def rows(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        """Rows of a query on the register."""
        with self.register.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql), params).all()]


@pytest.fixture
def api(register: Register) -> Iterator[Api]:
    """A seeded register served over HTTP, with keys for court, tax and personnel."""
    seed_register(register)
    keys = {a: add_key(register, a, actor="test") for a in KEYED_AUTHORITIES}
    with TestClient(create_app(register)) as client:
        yield Api(register, client, keys)


def assert_problem(
    response: httpx.Response, status: int, field: str | None = None
) -> dict[str, Any]:
    """Check a problem+json response; when `field` is given, an error must name it."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].split(";")[0].strip() == PROBLEM
    body: dict[str, Any] = response.json()
    assert {"type", "title", "status"} <= body.keys(), body
    assert body["status"] == status
    assert isinstance(body["title"], str) and body["title"]
    if field is not None:
        errors = body.get("errors")
        assert isinstance(errors, list) and errors, body
        for error in errors:
            assert set(error) == {"field", "message"}, error
            assert isinstance(error["message"], str) and error["message"]
        named = [e["field"] for e in errors]
        assert any(_names(f, field) for f in named), f"no error names {field!r}: {errors}"
    return body


def _names(location: str, field: str) -> bool:
    """Whether an error location ("legal_basis", "query.as_of", "line 1, column 'x'") is field."""
    return location == field or location.split(".")[-1] == field or f"{field!r}" in location
