"""A page whose route meets a database error gets the status the API would give, as a page:
unavailable 503 (with Retry-After), a lost uniqueness race 409, a value that cannot be
stored 422, any other driver error a 500 that is logged; the API keeps problem+json."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import DataError, IntegrityError, OperationalError, ProgrammingError

from credo.api.app import create_app
from credo.services.register import Register

ERRORS = {
    "down": OperationalError("SELECT 1", {}, Exception("server closed the connection")),
    "race": IntegrityError("INSERT", {}, Exception("duplicate key")),
    "range": DataError("INSERT", {}, Exception("value out of range")),
    "bug": ProgrammingError("SELEC 1", {}, Exception("syntax error")),
}


@pytest.fixture
def client(register: Register) -> TestClient:
    app = create_app(register)

    def fail(kind: str) -> None:
        raise ERRORS[kind]

    # A page route and an API route that meet the error (added for this test only).
    app.add_api_route("/boom/{kind}", fail)
    app.add_api_route("/v1/boom/{kind}", fail)
    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize(
    ("kind", "status"), [("down", 503), ("race", 409), ("range", 422), ("bug", 500)]
)
def test_pages_and_the_api_answer_database_errors_alike(
    client: TestClient, kind: str, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        page = client.get(f"/boom/{kind}")
        api = client.get(f"/v1/boom/{kind}")
    assert (page.status_code, api.status_code) == (status, status)
    assert page.headers["content-type"].startswith("text/html")
    assert api.headers["content-type"].startswith("application/problem+json")
    assert "syntax error" not in page.text and "syntax error" not in api.text
    if status == 503:
        assert page.headers["retry-after"] and api.headers["retry-after"]
    logged = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert bool(logged) == (kind == "bug")
