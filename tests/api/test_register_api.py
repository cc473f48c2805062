"""Lists, measures, checks, promotion review and the public register through HTTP."""

from __future__ import annotations

from fastapi.testclient import TestClient

from credo.api.app import create_app
from tests.api.conftest import Api, assert_problem
from tests.factories import file_rows, record


def file_defiance(api: Api, *subjects: str) -> None:
    file_rows(
        api.register,
        "city-court",
        [record(f"EX-{s}", s, "court.order_defiance", "2026-01-10") for s in subjects],
    )


def test_list_members_need_a_purpose_that_sees_lists(api: Api) -> None:
    file_defiance(api, "s-001")
    refused = api.client.get(
        "/v1/lists/dishonest/members",
        params={"purpose": "promotion-review"},
        headers=api.auth("city-court"),
    )
    body = assert_problem(refused, 403, "purpose")
    assert "promotion-review" in body["title"]
    ok = api.client.get(
        "/v1/lists/dishonest/members",
        params={"purpose": "promotion-review"},
        headers=api.auth("city-personnel"),
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["list"] == "dishonest"
    assert [m["subject_id"] for m in ok.json()["members"]] == ["s-001"]
    assert ok.json()["members"][0]["causes"][0]["record"]["reference"] == "EX-s-001"
    missing = api.client.get("/v1/lists/dishonest/members", headers=api.auth("city-court"))
    assert_problem(missing, 422, "purpose")
    anonymous = api.client.get("/v1/lists/dishonest/members", params={"purpose": "x"})
    assert_problem(anonymous, 401)


def test_measures_and_their_change_feed(api: Api) -> None:
    file_defiance(api, "s-001", "s-002", "s-003")
    first = api.client.get(
        "/v1/measures", params={"limit": 2}, headers=api.auth("city-personnel")
    ).json()
    assert [i["subject_id"] for i in first["items"]] == ["s-001", "s-002"]
    rest = api.client.get(
        "/v1/measures",
        params={"limit": 2, "after": first["next_after"]},
        headers=api.auth("city-personnel"),
    ).json()
    assert [i["subject_id"] for i in rest["items"]] == ["s-003"] and rest["next_after"] is None
    feed = api.client.get(
        "/v1/measures/changes", params={"since": 0}, headers=api.auth("city-personnel")
    ).json()
    assert [(e["change"], e["subject_id"]) for e in feed["events"]] == [
        ("start", "s-001"),
        ("start", "s-002"),
        ("start", "s-003"),
    ]
    assert feed["cursor"] == first["cursor"] == feed["events"][-1]["seq"]
    again = api.client.get(
        "/v1/measures/changes", params={"since": feed["cursor"]}, headers=api.auth("city-personnel")
    ).json()
    assert again["events"] == [] and again["cursor"] == feed["cursor"]
    court = api.client.get("/v1/measures", headers=api.auth("city-court")).json()
    assert court["items"] == []  # the court applies no measure of the worked policy
    bad = api.client.get(
        "/v1/measures", params={"after": "%%%"}, headers=api.auth("city-personnel")
    )
    assert_problem(bad, 422, "after")


def test_a_batch_check_shows_only_what_the_purpose_sees(api: Api) -> None:
    file_rows(api.register, "city-tax", [record("T-1", "s-002", "tax.arrears", "2026-03-01")])
    response = api.client.post(
        "/v1/checks",
        json={"purpose": "tax-check", "subject_ids": ["s-002", "s-999"]},
        headers=api.auth("city-tax"),
    )
    assert response.status_code == 200, response.text
    answers = response.json()["answers"]
    assert answers[0] == {
        "subject_id": "s-002",
        "as_of": "2026-03-15",
        "policy": "worked@1",
        "purpose": "tax-check",
        "score": 940,
        "grade": "C",
        "measures": ["tax.strict"],
    }
    assert answers[1] == {"subject_id": "s-999", "error": "not registered"}
    too_many = api.client.post(
        "/v1/checks",
        json={"purpose": "tax-check", "subject_ids": [f"s-{n}" for n in range(1001)]},
        headers=api.auth("city-tax"),
    )
    assert_problem(too_many, 422, "subject_ids")
    assert api.count("inquiries") == 1


def test_promotion_review_needs_the_promotion_table(api: Api) -> None:
    response = api.client.post(
        "/v1/promotions/review",
        json={"candidates": [{"subject_id": "s-001", "performance": 80}]},
        headers=api.auth("city-personnel"),
    )
    assert_problem(response, 409)  # the worked policy has no [promotion] table
    wrong = api.client.post(
        "/v1/promotions/review",
        json={"candidates": [{"subject_id": "s-001", "performance": 180}]},
        headers=api.auth("city-personnel"),
    )
    assert_problem(wrong, 422, "performance")
    not_allowed = api.client.post(
        "/v1/promotions/review",
        json={"candidates": [{"subject_id": "s-001", "performance": 80}]},
        headers=api.auth("city-tax"),
    )
    assert_problem(not_allowed, 403, "purpose")


def test_the_public_register_needs_no_login_and_is_rate_limited(api: Api) -> None:
    file_defiance(api, "s-001")
    api.register.clock.day = api.register.clock.today().replace(month=4)  # type: ignore[attr-defined]
    found = api.client.get("/v1/public/search", params={"q": "person 1"})
    assert found.status_code == 200, found.text
    assert found.json()["entries"][0]["reference"] == "EX-s-001"
    assert set(found.json()["entries"][0]) == {
        "name",
        "authority",
        "category",
        "decided_on",
        "legal_basis",
        "reference",
    }
    listed = api.client.get("/v1/public/lists/dishonest")
    assert [e["name"] for e in listed.json()["entries"]] == ["Person 1"]
    assert_problem(api.client.get("/v1/public/search", params={"q": "x"}), 422, "q")
    with TestClient(create_app(api.register, public_per_minute=3)) as limited:
        codes = [limited.get("/v1/public/lists/dishonest").status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        assert_problem(limited.get("/v1/public/search", params={"q": "person"}), 429)
