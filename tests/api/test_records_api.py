"""Filing through HTTP (DESIGN 4.2, 4.4): auth, one record, batches, and the OpenAPI page."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import text

from credo.api.app import create_app
from tests.api.conftest import PROBLEM, Api, TestClient, assert_problem
from tests.factories import record

RECORDS = "/v1/records"
BATCH = "/v1/records/batch"
STANDING = "/v1/subjects/s-001/standing?purpose=promotion-review"


def defiance(reference: str = "2026-EX-17", **extra: Any) -> dict[str, Any]:
    """A valid court filing about s-001."""
    return record(reference, "s-001", "court.order_defiance", "2026-01-10", **extra)


def stored(api: Api) -> tuple[int, int]:
    """What a refusal must leave untouched: stored records and audit entries."""
    return api.count("records"), api.count("audit_entries")


# --- authentication -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"), [("POST", RECORDS), ("POST", BATCH), ("GET", STANDING)]
)
def test_a_request_without_a_key_gets_401_with_a_bearer_challenge(
    api: Api, method: str, path: str
) -> None:
    before = stored(api)
    response = api.client.request(method, path, json=defiance())
    assert_problem(response, 401)
    assert response.headers["www-authenticate"].lower().startswith("bearer")
    assert stored(api) == before
    assert api.count("inquiries") == 0


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer credo_0123456789ab_not-the-right-secret-at-all-000000000000",
        "Bearer not-a-credo-key",
        "Bearer credo",
        "Basic dXNlcjpwYXNz",
        "Bearer ",
    ],
    ids=["unknown-key", "malformed", "no-parts", "basic-scheme", "empty"],
)
def test_a_wrong_or_malformed_key_gets_401(api: Api, authorization: str) -> None:
    before = stored(api)
    response = api.client.post(RECORDS, json=defiance(), headers={"Authorization": authorization})
    assert_problem(response, 401)
    assert "bearer" in response.headers.get("www-authenticate", "").lower()
    assert stored(api) == before


def test_a_real_prefix_with_a_wrong_secret_gets_401(api: Api) -> None:
    prefix = "_".join(api.keys["city-court"].split("_")[:2])
    forged = f"{prefix}_{'x' * 43}"
    response = api.client.post(
        RECORDS, json=defiance(), headers={"Authorization": f"Bearer {forged}"}
    )
    assert_problem(response, 401)
    assert api.count("records") == 0


# --- POST /v1/records ----------------------------------------------------------------


def test_filing_a_record_answers_201_with_its_id(api: Api) -> None:
    response = api.client.post(RECORDS, json=defiance(), headers=api.auth("city-court"))
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["created"] is True
    assert body["authority"] == "city-court"
    assert body["reference"] == "2026-EX-17"
    assert body["subject_id"] == "s-001"
    assert body["category"] == "court.order_defiance"
    assert body["decided_on"] == "2026-01-10"
    assert api.rows("SELECT id, authority_id, reference, subject_id FROM records") == [
        (body["id"], "city-court", "2026-EX-17", "s-001")
    ]


def test_the_authority_comes_from_the_key_not_from_who_files_first(api: Api) -> None:
    court = api.client.post(RECORDS, json=defiance("R-1"), headers=api.auth("city-court"))
    tax = api.client.post(
        RECORDS,
        json=record("R-1", "s-001", "tax.arrears", "2026-01-10"),
        headers=api.auth("city-tax"),
    )
    assert (court.status_code, tax.status_code) == (201, 201)
    assert court.json()["id"] != tax.json()["id"]
    assert tax.json()["authority"] == "city-tax"
    assert sorted(api.rows("SELECT authority_id, category FROM records")) == [
        ("city-court", "court.order_defiance"),
        ("city-tax", "tax.arrears"),
    ]


def test_filing_the_same_body_again_answers_200_with_the_same_record(api: Api) -> None:
    first = api.client.post(RECORDS, json=defiance(), headers=api.auth("city-court"))
    again = api.client.post(RECORDS, json=defiance(), headers=api.auth("city-court"))
    assert first.status_code == 201
    assert again.status_code == 200, again.text
    assert again.json()["created"] is False
    assert again.json()["id"] == first.json()["id"]
    assert api.count("records") == 1


def test_the_same_reference_with_other_content_is_refused_naming_reference(api: Api) -> None:
    first = api.client.post(RECORDS, json=defiance(), headers=api.auth("city-court"))
    assert first.status_code == 201
    before = stored(api)
    changed = defiance(summary="a different decision under the same number")
    response = api.client.post(RECORDS, json=changed, headers=api.auth("city-court"))
    assert response.status_code in (409, 422), response.text
    assert_problem(response, response.status_code, "reference")
    assert stored(api) == before
    assert api.rows("SELECT summary FROM records") == [(defiance()["summary"],)]


def _without(key: str) -> dict[str, Any]:
    body = defiance()
    del body[key]
    return body


REFUSED = {
    "authority-in-body": (defiance(authority="city-tax"), "authority"),
    "missing-legal-basis": (_without("legal_basis"), "legal_basis"),
    "blank-legal-basis": (defiance(legal_basis="   "), "legal_basis"),
    "future-decided-on": (
        record("R-F", "s-001", "court.order_defiance", "2026-03-16"),
        "decided_on",
    ),
    "category-not-filable": (record("R-T", "s-001", "tax.arrears", "2026-01-10"), "category"),
    "unknown-category": (record("R-U", "s-001", "court.nonsense", "2026-01-10"), "category"),
    "unknown-subject": (record("R-S", "s-999", "court.order_defiance", "2026-01-10"), "subject_id"),
    "occurred-after-decided": (defiance(occurred_on="2026-02-01"), "occurred_on"),
    "summary-too-long": (defiance(summary="x" * 2001), "summary"),
    "not-a-date": (record("R-D", "s-001", "court.order_defiance", "2026-02-30"), "decided_on"),
    "unknown-field": (defiance(remarks="seen at a protest"), "remarks"),
    "amount-not-a-number": (defiance(amount="a lot"), "amount"),
    "amount-boolean": (defiance(amount=True), "amount"),
}


@pytest.mark.parametrize(("body", "field"), REFUSED.values(), ids=REFUSED.keys())
def test_a_refused_record_is_422_problem_naming_the_field_and_stores_nothing(
    api: Api, body: dict[str, Any], field: str
) -> None:
    before = stored(api)
    response = api.client.post(RECORDS, json=body, headers=api.auth("city-court"))
    assert_problem(response, 422, field)
    assert stored(api) == before
    assert api.count("batches", "kind = 'records'") == 0


def test_two_simultaneous_identical_filings_store_one_record_and_both_succeed(api: Api) -> None:
    """A client retrying before its first request answered must not see an error."""
    engine = api.register.engine
    # A crash must show as the 500 a client would get, not as a traceback in the test.
    with (
        TestClient(create_app(api.register), raise_server_exceptions=False) as client,
        ThreadPoolExecutor(2) as pool,
    ):

        def post() -> tuple[int, str]:
            response = client.post(RECORDS, json=defiance(), headers=api.auth("city-court"))
            return response.status_code, response.text

        if engine.dialect.name == "postgresql":
            # Hold inserts back until both requests have looked for the reference, so the
            # two transactions really overlap (SQLite serialises writers by itself).
            with engine.connect() as gate, gate.begin():
                gate.execute(text("LOCK TABLE records IN SHARE MODE"))
                futures = [pool.submit(post), pool.submit(post)]
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    waiting = gate.execute(
                        text("SELECT count(*) FROM pg_locks WHERE NOT granted")
                    ).scalar_one()
                    if waiting >= 2:
                        break
                    time.sleep(0.02)
        else:
            futures = [pool.submit(post), pool.submit(post)]
        results = [f.result(timeout=30) for f in futures]
    assert sorted(status for status, _ in results) == [200, 201], results
    assert json.loads(results[0][1])["id"] == json.loads(results[1][1])["id"]
    assert api.count("records") == 1


def test_a_body_that_is_not_json_is_a_422_problem(api: Api) -> None:
    response = api.client.post(
        RECORDS,
        content=b"reference=R-1",
        headers={**api.auth("city-court"), "Content-Type": "application/json"},
    )
    assert_problem(response, 422)
    assert api.count("records") == 0


# --- POST /v1/records/batch ------------------------------------------------------------


def _csv(rows: list[dict[str, Any]]) -> bytes:
    header = ["reference", "subject_id", "category", "decided_on", "legal_basis", "summary"]
    lines = [",".join(header)] + [",".join(str(r[h]) for h in header) for r in rows]
    return ("\n".join(lines) + "\n").encode()


def _ndjson(rows: list[dict[str, Any]]) -> bytes:
    return ("\n".join(json.dumps(r) for r in rows) + "\n").encode()


GOOD = [
    defiance("B-1"),
    record("B-2", "s-002", "court.order_defiance", "2026-02-01"),
    record("B-3", "s-003", "court.order_defiance", "2026-03-01"),
]
MIXED = [
    defiance("M-1"),
    record("M-2", "s-001", "tax.arrears", "2026-01-10"),  # the court may not file tax
    record("M-3", "s-999", "court.order_defiance", "2026-01-10"),  # unknown subject
    defiance("M-1"),  # the same row again within the file
    record("M-5", "s-002", "court.order_defiance", "2027-01-01"),  # in the future
]
FORMATS = {
    "csv": ("text/csv", _csv, 2),  # line 1 is the header
    "ndjson": ("application/x-ndjson", _ndjson, 1),
}


def _post_batch(api: Api, fmt: str, rows: list[dict[str, Any]], authority: str = "city-court"):
    content_type, encode, _ = FORMATS[fmt]
    return api.client.post(
        BATCH,
        content=encode(rows),
        headers={**api.auth(authority), "Content-Type": content_type},
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_batch_stores_every_good_row_and_reports_each_by_line(api: Api, fmt: str) -> None:
    first_line = FORMATS[fmt][2]
    response = _post_batch(api, fmt, GOOD)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["stored"], body["duplicates"], body["rejected"]) == (3, 0, 0)
    assert [(r["line"], r["status"], r["reference"]) for r in body["rows"]] == [
        (first_line, "stored", "B-1"),
        (first_line + 1, "stored", "B-2"),
        (first_line + 2, "stored", "B-3"),
    ]
    assert sorted(api.rows("SELECT reference, authority_id FROM records")) == [
        ("B-1", "city-court"),
        ("B-2", "city-court"),
        ("B-3", "city-court"),
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_reposting_the_same_batch_stores_nothing_twice(api: Api, fmt: str) -> None:
    assert _post_batch(api, fmt, GOOD).status_code == 200
    audit_before = api.count("audit_entries")
    response = _post_batch(api, fmt, GOOD)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["stored"], body["duplicates"], body["rejected"]) == (0, 3, 0)
    assert [r["status"] for r in body["rows"]] == ["duplicate"] * 3
    assert [r["line"] for r in body["rows"]] == [FORMATS[fmt][2] + i for i in range(3)]
    assert api.count("records") == 3
    assert api.count("audit_entries") == audit_before


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_mixed_batch_reports_stored_duplicate_and_rejected_rows(api: Api, fmt: str) -> None:
    first = FORMATS[fmt][2]
    response = _post_batch(api, fmt, MIXED)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["stored"], body["duplicates"], body["rejected"]) == (1, 1, 3)
    by_line = {r["line"]: r for r in body["rows"]}
    assert sorted(by_line) == [first + i for i in range(5)]
    assert [by_line[first + i]["status"] for i in range(5)] == [
        "stored",
        "rejected",
        "rejected",
        "duplicate",
        "rejected",
    ]
    named = {
        line: {e["field"] for e in r["errors"]}
        for line, r in by_line.items()
        if r["status"] == "rejected"
    }
    assert named == {first + 1: {"category"}, first + 2: {"subject_id"}, first + 4: {"decided_on"}}
    for r in body["rows"]:
        if r["status"] == "rejected":
            assert all(set(e) == {"field", "message"} and e["message"] for e in r["errors"])
    assert api.rows("SELECT reference FROM records") == [("M-1",)]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_batch_files_in_the_name_of_the_key_holder(api: Api, fmt: str) -> None:
    rows = [record("T-1", "s-001", "tax.arrears", "2026-01-10")]
    response = _post_batch(api, fmt, rows, authority="city-tax")
    assert response.status_code == 200, response.text
    assert response.json()["stored"] == 1
    assert api.rows("SELECT authority_id, reference FROM records") == [("city-tax", "T-1")]


def test_a_csv_batch_with_an_authority_column_is_refused_whole(api: Api) -> None:
    body = b"reference,subject_id,category,decided_on,legal_basis,authority\n"
    body += b"A-1,s-001,court.order_defiance,2026-01-10,Law art. 1,city-tax\n"
    response = api.client.post(
        BATCH, content=body, headers={**api.auth("city-court"), "Content-Type": "text/csv"}
    )
    assert_problem(response, 422, "authority")
    assert api.count("records") == 0


def test_an_ndjson_row_naming_an_authority_is_rejected(api: Api) -> None:
    response = _post_batch(api, "ndjson", [defiance("A-1", authority="city-tax"), defiance("A-2")])
    assert response.status_code == 200, response.text
    rows = response.json()["rows"]
    assert [(r["line"], r["status"]) for r in rows] == [(1, "rejected"), (2, "stored")]
    assert "authority" in {e["field"] for e in rows[0]["errors"]}
    assert api.rows("SELECT authority_id, reference FROM records") == [("city-court", "A-2")]


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", None])
def test_a_batch_in_an_unsupported_content_type_is_422(api: Api, content_type: str | None) -> None:
    headers = api.auth("city-court")
    if content_type is not None:
        headers["Content-Type"] = content_type
    before = stored(api)
    response = api.client.post(BATCH, content=_ndjson(GOOD), headers=headers)
    assert_problem(response, 422, "content-type")
    assert stored(api) == before


def test_a_csv_content_type_with_a_charset_is_accepted(api: Api) -> None:
    response = api.client.post(
        BATCH,
        content=_csv(GOOD),
        headers={**api.auth("city-court"), "Content-Type": "text/csv; charset=utf-8"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["stored"] == 3


# --- the API describes itself -----------------------------------------------------------


def test_the_openapi_document_lists_the_v1_paths(api: Api) -> None:
    response = api.client.get("/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "post" in paths["/v1/records"]
    assert "post" in paths["/v1/records/batch"]
    assert "get" in paths["/v1/subjects/{subject_id}/standing"]
    batch_body = paths["/v1/records/batch"]["post"]["requestBody"]["content"]
    assert {"text/csv", "application/x-ndjson"} <= batch_body.keys()
    errors = paths["/v1/records"]["post"]["responses"]["422"]["content"]
    assert PROBLEM in errors


def test_the_docs_page_answers(api: Api) -> None:
    response = api.client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in response.text
