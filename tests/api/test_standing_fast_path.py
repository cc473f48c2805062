"""The standing lookup's short way (credo.api.standing_fast) answers exactly as FastAPI does.

The same PostgreSQL register is served twice: by the app as built (the short way in front
of FastAPI) and by the same app with the short way taken out. Every request below goes to
both; status, headers and body must be the same byte for byte, and so must the inquiries
each logs. Requests the short way must take are checked not to reach the FastAPI route;
variants it must leave alone (no key, a malformed one, a session cookie, a missing or
repeated purpose, a date in another form) are checked to reach it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from fastapi.testclient import TestClient

from credo.api import standing as standing_route
from credo.api.app import create_app
from credo.api.standing_fast import _plain_lookup
from credo.web.admin_data import keys, revoke_key
from tests.api.conftest import Api
from tests.factories import file_rows, record

ON_POSTGRES = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)

LONG = "p" * 65
Request = tuple[str, dict[str, str]]


@pytest.fixture
def both(api: Api, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Api, TestClient, list[str]]]:
    """The seeded register with the worked example, a client of the app without the short
    way, and the list of subjects the FastAPI route was asked about (by either client)."""
    file_rows(
        api.register,
        "city-court",
        [
            record("2026-EX-17", "s-001", "court.order_defiance", "2026-01-10"),
            record("2026-EX-52", "s-001", "court.order_defiance", "2026-03-01"),
        ],
    )
    file_rows(api.register, "city-tax", [record("TX-2025-3", "s-001", "tax.arrears", "2025-02-01")])
    routed: list[str] = []
    original = standing_route.query_standing_async

    async def counted(register: Any, **kwargs: Any) -> dict[str, Any]:
        routed.append(kwargs["subject_id"])
        return await original(register, **kwargs)

    monkeypatch.setattr(standing_route, "query_standing_async", counted)
    full_app = create_app(api.register)
    full_app.short_way = False
    with TestClient(full_app) as full:
        yield api, full, routed


def _key(api: Api, authority: str) -> dict[str, str]:
    return api.auth(authority)


def plain_requests(api: Api) -> list[Request]:
    """Well-formed lookups with an API key: the short way answers these."""
    personnel, tax, court = (_key(api, a) for a in ("city-personnel", "city-tax", "city-court"))
    return [
        ("/v1/subjects/s-001/standing?purpose=promotion-review", personnel),
        ("/v1/subjects/s-001/standing?purpose=promotion-review&as_of=2028-01-10", personnel),
        ("/v1/subjects/s-001/standing?as_of=2026-03-15&purpose=tax-check", tax),
        ("/v1/subjects/s-002/standing?purpose=tax-check&other=ignored", tax),
        ("/v1/subjects/s-001/standing?purpose=promotion-review", tax),  # 403 closed purpose
        ("/v1/subjects/s-001/standing?purpose=curiosity", personnel),  # 403 unknown purpose
        ("/v1/subjects/s-999/standing?purpose=promotion-review", personnel),  # 404
        ("/v1/subjects/s-999/standing?purpose=promotion-review", court),  # 403 before 404
        ("/v1/subjects/s%C3%BC/standing?purpose=tax-check", tax),  # 404, non-ASCII id
        (
            "/v1/subjects/s-001/standing?purpose=tax-check",
            {"Authorization": "bearer " + tax["Authorization"][7:]},
        ),
        (
            "/v1/subjects/s-001/standing?purpose=tax-check",
            {"Authorization": "Bearer credo_000000000000_wrong"},  # 401 unknown key
        ),
        ("/v1/subjects/s-001/standing?purpose=tax-check&as_of=9999-12-31", tax),
        ("/v1/subjects/s-001/standing?purpose=tax-check&as_of=0001-01-01", tax),
        ("/v1/subjects/s-001/standing?purpose=" + "p" * 64, tax),  # 403, longest purpose
    ]


def other_requests(api: Api) -> list[Request]:
    """Variants the short way leaves to FastAPI: validation and authentication its own."""
    tax = _key(api, "city-tax")
    return [
        ("/v1/subjects/s-001/standing", tax),  # 422 no purpose
        ("/v1/subjects/s-001/standing?purpose=", tax),  # 422 empty purpose
        ("/v1/subjects/s-001/standing?purpose=" + LONG, tax),  # 422 too long
        ("/v1/subjects/s-001/standing?purpose=tax-check&purpose=x", tax),  # 403 for x
        ("/v1/subjects/s-001/standing?purpose=tax-check&as_of=2026-3-1", tax),
        ("/v1/subjects/s-001/standing?purpose=tax-check&as_of=2026-02-30", tax),
        ("/v1/subjects/s-001/standing?purpose=tax-check&as_of=", tax),
        ("/v1/subjects/s-001/standing?purpose=tax-check&as_of=%D9%A2%D9%A0%D9%A2%D9%A6-01-01", tax),
        ("/v1/subjects/s-001/standing?purpose=tax-check", {}),  # 401 no key
        ("/v1/subjects/s-001/standing?purpose=tax-check", {"Authorization": "Bearer nonsense"}),
        ("/v1/subjects/s-001/standing?purpose=tax-check", {"Authorization": "Basic eDp5"}),
        ("/v1/subjects/s-001/standing?purpose=tax-check", {**tax, "Cookie": "credo_session=x"}),
        ("/v1/subjects/s-001/standing/?purpose=tax-check", tax),
    ]


def _answer(client: TestClient, request: Request) -> tuple[int, list[tuple[str, str]], bytes]:
    url, headers = request
    response = client.get(url, headers=headers, follow_redirects=False)
    return response.status_code, sorted(response.headers.multi_items()), response.content


@ON_POSTGRES
def test_the_short_way_answers_the_plain_lookups_exactly_as_fastapi(
    both: tuple[Api, TestClient, list[str]],
) -> None:
    api, full, routed = both
    statuses = []
    for request in plain_requests(api):
        before = api.count("inquiries")
        fast = _answer(api.client, request)
        logged_fast = api.count("inquiries") - before
        assert routed == [], f"{request[0]} went through FastAPI"
        slow = _answer(full, request)
        logged_slow = api.count("inquiries") - before - logged_fast
        assert routed, f"{request[0]} did not reach the route without the short way"
        routed.clear()
        assert fast == slow, request[0]
        assert logged_fast == logged_slow == (1 if fast[0] == 200 else 0), request[0]
        statuses.append(fast[0])
    assert statuses == [200, 200, 200, 200, 403, 403, 404, 403, 404, 200, 401, 200, 200, 403]


@ON_POSTGRES
def test_the_lookups_it_does_not_recognise_go_to_fastapi_unchanged(
    both: tuple[Api, TestClient, list[str]],
) -> None:
    api, full, routed = both
    statuses = []
    for request in other_requests(api):
        fast = _answer(api.client, request)
        slow = _answer(full, request)
        assert fast == slow, request[0]
        statuses.append(fast[0])
    assert statuses == [422, 422, 422, 403, 422, 422, 422, 422, 401, 401, 401, 200, 307]
    # FastAPI reads the last of a repeated purpose (here 403), and a key beside a session
    # cookie (200): those two reached the route, once per client; the rest were refused
    # before it, by FastAPI's validation or its dependencies, or redirected
    assert routed == ["s-001"] * 4
    assert api.count("inquiries") == 2


@ON_POSTGRES
def test_a_revoked_key_is_refused_at_once_on_the_short_way(
    both: tuple[Api, TestClient, list[str]],
) -> None:
    api, _, routed = both
    url = "/v1/subjects/s-001/standing?purpose=tax-check"
    assert api.client.get(url, headers=_key(api, "city-tax")).status_code == 200
    prefix = api.keys["city-tax"].split("_")[1]
    (key_id,) = [k["id"] for k in keys(api.register) if k["prefix"] == prefix]
    revoke_key(api.register, key_id, actor="test")
    refused = api.client.get(url, headers=_key(api, "city-tax"))
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
    assert refused.headers["content-security-policy"]  # the app's headers, on the short way
    assert routed == []


def test_what_the_short_way_recognises() -> None:
    """The request it takes apart; on SQLite it passes even these on (the route's threaded
    path serves them, and tests/api/test_standing_api.py runs every case there)."""
    scope: dict[str, Any] = {
        "type": "http",
        "method": "GET",
        "path": "/v1/subjects/s-1/standing",
        "query_string": b"purpose=tax-check&as_of=2026-01-31",
        "headers": [(b"authorization", b"Bearer credo_abc_def")],
    }
    assert _plain_lookup(scope) == ("s-1", "tax-check", date(2026, 1, 31), "credo_abc_def")
    assert _plain_lookup({**scope, "method": "POST"}) is None
    assert _plain_lookup({**scope, "path": "/v1/subjects/a/b/standing"}) is None
