"""Who may call what: every /v1 endpoint against every kind of caller, as one table.

The endpoints come from the app's own OpenAPI document, so a new endpoint without a row in
EXPECTED fails `test_the_matrix_covers_every_endpoint`. Each role makes a request that would
succeed for the role allowed to make it; a refusal must be problem+json and store nothing.

The world: s-001 ("subject") has a court record under objection (case `objection`, with an
attachment), a tax record free to object to, and an open review (`review`); s-002
("other_subject") has nothing on file. The authority key and the authority user are both
city-court, which may ask for the `tax-check` purpose.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import PROBLEM, Api, assert_problem
from tests.api.conftest_due import (
    ATTACHMENT,
    PASSWORD,
    People,
    file_over_http,
    object_over_http,
    record_body,
)
from tests.factories import WORKED_POLICY

ROLES = (
    "anonymous",
    "subject",
    "other_subject",
    "reviewer",
    "admin",
    "authority_key",
    "authority_user",
)
EITHER = (401, 403)  # an API key is not a session: "not logged in" or "not for you" both hold
Status = int | tuple[int, ...]

# fmt: off
E = EITHER
#                                                   anon subj other rev  admin key  auth-user
EXPECTED: dict[tuple[str, str], tuple[Status, ...]] = {
    ("POST", "/v1/records"):                        (401, 403, 403, 403, 403, 201, 201),
    ("POST", "/v1/records/batch"):                  (401, 403, 403, 403, 403, 200, 200),
    ("GET",  "/v1/subjects/{subject_id}/standing"): (401, 403, 403, 403, 403, 200, 200),
    ("GET",  "/v1/me"):                             (401, 200, 200, 200, 200, E,   200),
    ("GET",  "/v1/me/notices"):                     (401, 200, 200, 403, 403, E,   403),
    ("GET",  "/v1/me/file"):                        (401, 200, 200, 403, 403, E,   403),
    ("GET",  "/v1/me/cases"):                       (401, 200, 200, 403, 403, E,   403),
    ("GET",  "/v1/me/cases/{case_id}"):             (401, 200, 404, 403, 403, E,   403),
    ("GET",  "/v1/me/cases/{case_id}/attachment"):  (401, 200, 404, 403, 403, E,   403),
    ("POST", "/v1/me/objections"):                  (401, 201, 404, 403, 403, E,   403),
    ("POST", "/v1/me/repairs"):                     (401, 201, 404, 403, 403, E,   403),
    ("POST", "/v1/me/reviews"):                     (401, 201, 201, 403, 403, E,   403),
    ("GET",  "/v1/cases"):                          (401, 403, 403, 200, 403, 403, 403),
    ("GET",  "/v1/cases/{case_id}"):                (401, 403, 403, 200, 403, 403, 403),
    ("GET",  "/v1/cases/{case_id}/attachment"):     (401, 403, 403, 200, 403, 403, 403),
    ("POST", "/v1/cases/{case_id}/decision"):       (401, 403, 403, 200, 403, 403, 403),
    ("POST", "/v1/users"):                          (401, 403, 403, 403, 201, 403, 403),
    ("POST", "/v1/policies/preview"):               (401, 403, 403, 403, 200, E,   403),
    # The court's only purpose (tax-check) sees no lists and is no promotion review.
    ("GET",  "/v1/lists/{list_id}/members"):        (401, 403, 403, 403, 403, 403, 403),
    ("POST", "/v1/promotions/review"):              (401, 403, 403, 403, 403, 403, 403),
    ("GET",  "/v1/measures"):                       (401, 403, 403, 403, 403, 200, 200),
    ("GET",  "/v1/measures/changes"):               (401, 403, 403, 403, 403, 200, 200),
    ("POST", "/v1/checks"):                         (401, 403, 403, 403, 403, 200, 200),
    ("GET",  "/v1/public/lists/{list_id}"):         (200, 200, 200, 200, 200, 200, 200),
    ("GET",  "/v1/public/search"):                  (200, 200, 200, 200, 200, 200, 200),
    # Public, and last: logging in replaces the caller's cookie, logging out ends it.
    ("POST", "/v1/auth/login"):                     (200, 200, 200, 200, 200, 200, 200),
    ("POST", "/v1/auth/logout"):                    (204, 204, 204, 204, 204, 204, 204),
}
# fmt: on


@dataclass
class World:
    """The register, one client per role, and the ids the requests point at."""

    api: Api
    clients: dict[str, TestClient]
    court_record: int  # s-001's, under objection
    tax_record: int  # s-001's, not disputed
    objection: int  # s-001's case on court_record, with an attachment
    review: int  # s-001's open review of list:dishonest

    def counts(self) -> tuple[Any, ...]:
        """How many rows every table a refused request might write holds."""
        tables = ("records", "cases", "attachments", "users", "inquiries", "notices")
        select = ", ".join(f"(SELECT count(*) FROM {t})" for t in tables)
        return self.api.rows(f"SELECT {select}")[0]


def requests_for(w: World, role: str) -> dict[tuple[str, str], dict[str, Any]]:
    """One well-formed request per endpoint; references and usernames are unique per role."""
    csv = (
        "reference,subject_id,category,decided_on,legal_basis,summary\n"
        f"MXB-{role},s-001,court.order_defiance,2026-03-01,Civil Procedure Law art. 262,batch\n"
    )
    return {
        ("POST", "/v1/records"): {
            "url": "/v1/records",
            "json": record_body(f"MX-{role}", "court.order_defiance", "2026-03-02"),
        },
        ("POST", "/v1/records/batch"): {
            "url": "/v1/records/batch",
            "content": csv,
            "headers": {"Content-Type": "text/csv"},
        },
        ("GET", "/v1/subjects/{subject_id}/standing"): {
            "url": "/v1/subjects/s-001/standing",
            "params": {"purpose": "tax-check"},
        },
        ("GET", "/v1/me"): {"url": "/v1/me"},
        ("GET", "/v1/me/notices"): {"url": "/v1/me/notices"},
        ("GET", "/v1/me/file"): {"url": "/v1/me/file"},
        ("GET", "/v1/me/cases"): {"url": "/v1/me/cases"},
        ("GET", "/v1/me/cases/{case_id}"): {"url": f"/v1/me/cases/{w.objection}"},
        ("GET", "/v1/me/cases/{case_id}/attachment"): {
            "url": f"/v1/me/cases/{w.objection}/attachment"
        },
        ("POST", "/v1/me/objections"): {
            "url": "/v1/me/objections",
            "data": {"record_id": str(w.tax_record), "grounds": "I paid on time."},
            "files": {"attachment": ("bank.pdf", ATTACHMENT, "application/pdf")},
        },
        ("POST", "/v1/me/repairs"): {
            "url": "/v1/me/repairs",
            "data": {"record_id": str(w.court_record), "evidence": "I complied since."},
        },
        ("POST", "/v1/me/reviews"): {
            "url": "/v1/me/reviews",
            "json": {"target": "grade", "grounds": "Please look at my grade."},
        },
        ("GET", "/v1/cases"): {"url": "/v1/cases"},
        ("GET", "/v1/cases/{case_id}"): {"url": f"/v1/cases/{w.objection}"},
        ("GET", "/v1/cases/{case_id}/attachment"): {"url": f"/v1/cases/{w.objection}/attachment"},
        ("POST", "/v1/cases/{case_id}/decision"): {
            "url": f"/v1/cases/{w.review}/decision",
            "json": {"outcome": "confirm", "reasons": "The court order puts you on the list."},
        },
        ("POST", "/v1/users"): {
            "url": "/v1/users",
            "json": {
                "username": f"new.{role}",
                "password": PASSWORD,
                "role": "subject",
                "subject_id": "s-003",
            },
        },
        ("POST", "/v1/policies/preview"): {
            "url": "/v1/policies/preview",
            "json": {"policy": WORKED_POLICY.replace('version = "1"', 'version = "2"')},
        },
        ("GET", "/v1/lists/{list_id}/members"): {
            "url": "/v1/lists/dishonest/members",
            "params": {"purpose": "tax-check"},
        },
        ("POST", "/v1/promotions/review"): {
            "url": "/v1/promotions/review",
            "json": {"candidates": [{"subject_id": "s-001", "performance": 70}]},
        },
        ("GET", "/v1/measures"): {"url": "/v1/measures"},
        ("GET", "/v1/measures/changes"): {"url": "/v1/measures/changes", "params": {"since": 0}},
        ("POST", "/v1/checks"): {
            "url": "/v1/checks",
            "json": {"purpose": "tax-check", "subject_ids": ["s-001", "s-002"]},
        },
        ("GET", "/v1/public/lists/{list_id}"): {"url": "/v1/public/lists/dishonest"},
        ("GET", "/v1/public/search"): {"url": "/v1/public/search", "params": {"q": "person"}},
        ("POST", "/v1/auth/login"): {
            "url": "/v1/auth/login",
            "json": {"username": "wang.wei", "password": PASSWORD},
        },
        ("POST", "/v1/auth/logout"): {"url": "/v1/auth/logout"},
    }


@pytest.fixture
def world(api: Api) -> Iterator[World]:
    """The world of the module docstring, with every role's client logged in."""
    people = People(api)
    court_record = file_over_http(
        api, "city-court", "2026-EX-17", "court.order_defiance", "2026-03-01"
    )
    tax_record = file_over_http(api, "city-tax", "TX-2026-1", "tax.arrears", "2026-02-01")
    subject = people["subject"]
    objection = object_over_http(subject, court_record, "Not me: a namesake.")
    assert objection.status_code == 201, objection.text
    review = subject.post(
        "/v1/me/reviews", json={"target": "list:dishonest", "grounds": "Why am I listed?"}
    )
    assert review.status_code == 201, review.text
    clients = {role: people[role] for role in ROLES if role not in {"anonymous", "authority_key"}}
    clients["anonymous"] = people.new_client()
    clients["authority_key"] = people.new_client()
    clients["authority_key"].headers.update(api.auth("city-court"))
    yield World(
        api,
        clients,
        court_record,
        tax_record,
        objection.json()["id"],
        review.json()["id"],
    )
    people.close()


def test_the_matrix_covers_every_endpoint(api: Api) -> None:
    methods = {"get", "post", "put", "patch", "delete"}
    routes = {
        (method.upper(), path)
        for path, operations in api.client.app.openapi()["paths"].items()
        if path.startswith("/v1")
        for method in operations
        if method in methods
    }
    assert routes - EXPECTED.keys() == set(), "endpoints without a row in EXPECTED"
    assert EXPECTED.keys() - routes == set(), "rows in EXPECTED for endpoints that are gone"


def test_every_endpoint_answers_every_role_as_the_matrix_says(world: World) -> None:
    wrong = []
    for role_index, role in enumerate(ROLES):
        calls = requests_for(world, role)
        assert calls.keys() == EXPECTED.keys()
        for (method, path), row in EXPECTED.items():
            expected = row[role_index] if isinstance(row[role_index], tuple) else (row[role_index],)
            before = world.counts()
            response = world.clients[role].request(method, **calls[(method, path)])
            where = f"{method} {path} as {role}"
            if response.status_code not in expected:
                wrong.append(
                    f"{where}: expected {expected}, got {response.status_code} "
                    f"{response.text[:150]}"
                )
                continue
            if response.status_code >= 400:
                if response.headers.get("content-type", "").split(";")[0] != PROBLEM:
                    wrong.append(f"{where}: the refusal is not {PROBLEM}")
                if world.counts() != before:
                    wrong.append(f"{where}: refused, yet rows were written")
    assert wrong == [], "\n".join(wrong)


# --- no person sees another's data ---------------------------------------------------------


def test_another_subjects_case_looks_exactly_like_no_case(world: World) -> None:
    other = world.clients["other_subject"]
    for url in ("/v1/me/cases/{}", "/v1/me/cases/{}/attachment"):
        theirs = assert_problem(other.get(url.format(world.objection)), 404)
        missing = assert_problem(other.get(url.format(999999)), 404)
        assert theirs["title"].replace(str(world.objection), "N") == missing["title"].replace(
            "999999", "N"
        )
        assert "namesake" not in str(theirs) and "s-001" not in str(theirs)
    for url, field in (("/v1/me/objections", "grounds"), ("/v1/me/repairs", "evidence")):
        for record_id in (world.court_record, world.tax_record, 999999):
            response = other.post(url, data={"record_id": str(record_id), field: "Mine now."})
            body = assert_problem(response, 404, "record_id")
            assert "s-001" not in str(body)
    assert world.api.count("cases", "subject_id = 's-002'") == 0


def test_a_subjects_own_views_hold_nothing_of_anyone_else(world: World) -> None:
    other = world.clients["other_subject"]
    for url in ("/v1/me", "/v1/me/notices", "/v1/me/cases", "/v1/me/file"):
        response = other.get(url)
        assert response.status_code == 200, response.text
        for secret in ("s-001", "Person 1", "2026-EX-17", "TX-2026-1", "namesake"):
            assert secret not in response.text, f"{url} shows {secret!r}"
    file = other.get("/v1/me/file").json()
    assert file["subject"]["subject_id"] == "s-002"
    assert (file["records"], file["cases"]) == ([], [])
    # ...while the subject's own file holds their case.
    mine = world.clients["subject"].get("/v1/me/file").json()
    assert [c["id"] for c in mine["cases"]] == [world.review, world.objection]


def test_refusals_of_the_right_role_name_the_bad_input_and_store_nothing(world: World) -> None:
    o = world.objection
    cases = [
        # role, method, url, request, status, the field the problem names
        ("authority_key", "POST", "/v1/records",
         {"json": record_body("BAD-1", "court.order_defiance", "2026-03-01") | {"legal_basis": ""}},
         422, "legal_basis"),
        ("authority_key", "POST", "/v1/records",
         {"json": record_body("BAD-2", "tax.arrears", "2026-03-01")}, 422, "category"),
        ("authority_key", "GET", "/v1/subjects/s-001/standing", {}, 422, "purpose"),
        ("authority_key", "GET", "/v1/subjects/s-001/standing",
         {"params": {"purpose": "promotion-review"}}, 403, "purpose"),
        ("authority_user", "GET", "/v1/subjects/s-999/standing",
         {"params": {"purpose": "tax-check"}}, 404, "subject_id"),
        ("subject", "POST", "/v1/me/objections",
         {"data": {"record_id": str(world.tax_record)}}, 422, "grounds"),
        ("subject", "POST", "/v1/me/objections",
         {"data": {"record_id": str(world.court_record), "grounds": "Again."}}, 409, "record_id"),
        ("subject", "POST", "/v1/me/repairs",
         {"data": {"record_id": str(world.tax_record), "evidence": "Paid."}}, 422, "record_id"),
        ("subject", "POST", "/v1/me/reviews",
         {"json": {"target": "list:nope", "grounds": "?"}}, 422, "target"),
        ("subject", "POST", "/v1/me/objections",
         {"data": {"record_id": "twelve", "grounds": "?"}}, 422, "record_id"),
        ("subject", "POST", "/v1/me/objections",
         {"data": {"record_id": str(world.tax_record), "grounds": "See the scan."},
          "files": {"attachment": ("scan.pdf", b"0" * (5 * 1024 * 1024 + 1), "application/pdf")}},
         422, "attachment"),
        ("subject", "GET", "/v1/me/file", {"params": {"format": "docx"}}, 422, "format"),
        ("reviewer", "GET", "/v1/cases", {"params": {"status": "lost"}}, 422, "status"),
        ("reviewer", "GET", "/v1/cases/999999", {}, 404, None),
        ("reviewer", "GET", f"/v1/cases/{world.review}/attachment", {}, 404, None),
        ("reviewer", "POST", f"/v1/cases/{o}/decision", {"json": {"outcome": "reject"}},
         422, "reasons"),
        ("reviewer", "POST", f"/v1/cases/{o}/decision",
         {"json": {"outcome": "approve", "reasons": "An objection is not a repair."}},
         422, "outcome"),
        ("admin", "POST", "/v1/users",
         {"json": {"username": "x.y", "password": "short", "role": "reviewer"}}, 422, "password"),
        ("admin", "POST", "/v1/users",
         {"json": {"username": "x.y", "password": PASSWORD, "role": "subject"}}, 422, "subject_id"),
        ("admin", "POST", "/v1/users",
         {"json": {"username": "wang.wei", "password": PASSWORD, "role": "reviewer"}},
         409, "username"),
        ("anonymous", "POST", "/v1/auth/login",
         {"json": {"username": "wang.wei", "password": "not the password"}}, 401, None),
    ]  # fmt: skip
    for role, method, url, request, status, field in cases:
        before = world.counts()
        response = world.clients[role].request(method, url, **request)
        assert_problem(response, status, field)
        assert world.counts() == before, f"{method} {url} as {role} wrote rows"
    assert world.clients["reviewer"].get(f"/v1/cases/{o}").json()["status"] == "open"


def test_logging_out_ends_the_session_on_the_server(world: World, api: Api) -> None:
    client = world.clients["other_subject"]
    token = client.cookies["credo_session"]
    assert client.get("/v1/me").status_code == 200
    response = client.post("/v1/auth/logout")
    assert response.status_code == 204
    assert (
        'credo_session=""' in response.headers["set-cookie"]
        or "Max-Age=0" in response.headers["set-cookie"]
    )
    replay = TestClient(api.client.app, cookies={"credo_session": token})
    assert_problem(replay.get("/v1/me"), 401)
    assert_problem(replay.get("/v1/me/notices"), 401)
    replay.close()
