"""Standing through HTTP (DESIGN 4.4, 5): purpose-bound views, own measures, logged inquiries."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import Api, assert_problem
from tests.factories import file_rows, record

BASE_KEYS = {"subject_id", "as_of", "policy", "purpose"}


@pytest.fixture
def worked(api: Api) -> Api:
    """The DESIGN 5 worked example filed for s-001 by its real authorities."""
    filings = {
        "city-court": [
            record("2026-EX-17", "s-001", "court.order_defiance", "2026-01-10"),
            record("2026-EX-52", "s-001", "court.order_defiance", "2026-03-01"),
        ],
        "city-tax": [record("TX-2025-3", "s-001", "tax.arrears", "2025-02-01")],
        "city-civil": [record("CV-8", "s-001", "civic.volunteering", "2026-02-01")],
    }
    for authority, items in filings.items():
        report = file_rows(api.register, authority, items)
        assert (report.stored, report.rejected) == (len(items), 0)
    return api


def standing(api: Api, authority: str, purpose: str, subject: str = "s-001", **params: str):
    """GET a subject's standing as an authority for a purpose."""
    return api.client.get(
        f"/v1/subjects/{subject}/standing",
        params={"purpose": purpose, **params},
        headers=api.auth(authority),
    )


def inquiries(api: Api) -> list[tuple[Any, ...]]:
    """The logged inquiries: authority, purpose, subject, as_of (as text), channel."""
    rows = api.rows(
        "SELECT authority_id, purpose, subject_id, as_of, channel FROM inquiries ORDER BY id"
    )
    return [(a, p, s, str(d)[:10], c) for a, p, s, d, c in rows]


# --- what a purpose sees ------------------------------------------------------------------


def test_promotion_review_sees_grade_lists_measures_and_explanation_but_no_score(
    worked: Api,
) -> None:
    response = standing(worked, "city-personnel", "promotion-review")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body.keys() == BASE_KEYS | {"grade", "lists", "measures", "explanation"}
    assert body["subject_id"] == "s-001"
    assert body["as_of"] == "2026-03-15"  # the fixture's clock
    assert body["policy"] == "worked@1"
    assert body["purpose"] == "promotion-review"
    assert body["grade"] == "D"
    assert body["lists"] == ["dishonest"]
    assert body["measures"] == ["hr.no_promotion"]


def test_the_worked_example_explains_every_point_as_of_2026_03_15(worked: Api) -> None:
    body = standing(worked, "city-personnel", "promotion-review", as_of="2026-03-15").json()
    assert body["as_of"] == "2026-03-15"
    assert body["explanation"] == [
        {
            "authority": "city-court",
            "reference": "2026-EX-17",
            "category": "court.order_defiance",
            "points": -100,
            "effective_until": "2028-01-10",
            "capped": False,
        },
        {
            "authority": "city-civil",
            "reference": "CV-8",
            "category": "civic.volunteering",
            "points": 20,
            "effective_until": "2027-02-01",
            "capped": False,
        },
        {
            "authority": "city-court",
            "reference": "2026-EX-52",
            "category": "court.order_defiance",
            "points": -100,
            "effective_until": "2028-03-01",
            "capped": False,
        },
    ]
    # 1000 - 200 + 20 = 820: the tax arrears expired on 2026-02-01 and do not appear.
    assert 1000 + sum(item["points"] for item in body["explanation"]) == 820


def test_as_of_2028_01_10_the_worked_example_is_grade_c_and_still_dishonest(
    worked: Api,
) -> None:
    response = standing(worked, "city-personnel", "promotion-review", as_of="2028-01-10")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["as_of"] == "2028-01-10"
    assert body["grade"] == "C"
    assert body["lists"] == ["dishonest"]
    assert body["measures"] == ["hr.no_promotion"]
    assert [(e["reference"], e["points"], e["effective_until"]) for e in body["explanation"]] == [
        ("2026-EX-52", -100, "2028-03-01")
    ]


def test_a_subject_with_no_records_stands_at_the_base_grade(worked: Api) -> None:
    body = standing(worked, "city-personnel", "promotion-review", subject="s-002").json()
    assert (body["subject_id"], body["grade"], body["lists"], body["measures"]) == (
        "s-002",
        "B",
        [],
        [],
    )
    assert body["explanation"] == []


def test_tax_check_sees_score_grade_and_only_the_tax_bureaus_measures(worked: Api) -> None:
    response = standing(worked, "city-tax", "tax-check")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body.keys() == BASE_KEYS | {"score", "grade", "measures"}
    assert (body["score"], body["grade"]) == (820, "D")
    # hr.no_promotion applies to s-001 but belongs to city-personnel; tax.strict sees only
    # tax records, and the arrears expired on 2026-02-01.
    assert body["measures"] == []


def test_tax_check_shows_tax_strict_while_the_arrears_count(worked: Api) -> None:
    body = standing(worked, "city-tax", "tax-check", as_of="2025-06-01").json()
    assert body.keys() == BASE_KEYS | {"score", "grade", "measures"}
    assert (body["as_of"], body["score"], body["grade"]) == ("2025-06-01", 940, "C")
    assert body["measures"] == ["tax.strict"]


def test_tax_strict_is_never_shown_to_the_court_nor_hr_no_promotion_to_tax(worked: Api) -> None:
    court = standing(worked, "city-court", "tax-check", as_of="2025-06-01").json()
    assert court["measures"] == []
    for as_of in ("2025-06-01", "2026-03-15", "2028-01-10"):
        tax = standing(worked, "city-tax", "tax-check", as_of=as_of).json()
        assert "hr.no_promotion" not in tax["measures"]
        assert set(tax["measures"]) <= {"tax.strict"}
        assert "lists" not in tax and "explanation" not in tax


# --- refusals -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("authority", "purpose"),
    [
        ("city-tax", "promotion-review"),
        ("city-court", "promotion-review"),
        ("city-personnel", "tax-check"),
    ],
)
def test_a_purpose_not_open_to_the_authority_is_403_naming_it(
    worked: Api, authority: str, purpose: str
) -> None:
    response = standing(worked, authority, purpose)
    body = assert_problem(response, 403, "purpose")
    said = body["title"] + " ".join(e["message"] for e in body["errors"])
    assert purpose in said
    assert "grade" not in body and "measures" not in body
    assert worked.count("inquiries") == 0


def test_an_unknown_purpose_is_403(worked: Api) -> None:
    response = standing(worked, "city-personnel", "curiosity")
    body = assert_problem(response, 403, "purpose")
    assert "curiosity" in body["title"] + " ".join(e["message"] for e in body["errors"])
    assert worked.count("inquiries") == 0


def test_an_unknown_subject_is_404(worked: Api) -> None:
    response = standing(worked, "city-personnel", "promotion-review", subject="s-999")
    assert_problem(response, 404, "subject_id")
    assert worked.count("inquiries") == 0


def test_an_unknown_subject_for_a_closed_purpose_is_still_403(worked: Api) -> None:
    # Refusing the purpose first does not reveal whether a subject is registered.
    response = standing(worked, "city-tax", "promotion-review", subject="s-999")
    assert_problem(response, 403, "purpose")


@pytest.mark.parametrize("as_of", ["2026-13-01", "yesterday", "2026-02-30", ""])
def test_a_bad_as_of_is_422_naming_it(worked: Api, as_of: str) -> None:
    response = standing(worked, "city-personnel", "promotion-review", as_of=as_of)
    assert_problem(response, 422, "as_of")
    assert worked.count("inquiries") == 0


def test_a_standing_request_without_a_purpose_is_422(worked: Api) -> None:
    response = worked.client.get(
        "/v1/subjects/s-001/standing", headers=worked.auth("city-personnel")
    )
    assert_problem(response, 422, "purpose")
    assert worked.count("inquiries") == 0


# --- every look is logged ------------------------------------------------------------------


def test_each_answered_request_logs_exactly_one_inquiry(worked: Api) -> None:
    assert standing(worked, "city-personnel", "promotion-review").status_code == 200
    assert inquiries(worked) == [
        ("city-personnel", "promotion-review", "s-001", "2026-03-15", "api")
    ]
    later = standing(worked, "city-tax", "tax-check", subject="s-002", as_of="2025-06-01")
    assert later.status_code == 200, later.text
    assert inquiries(worked) == [
        ("city-personnel", "promotion-review", "s-001", "2026-03-15", "api"),
        ("city-tax", "tax-check", "s-002", "2025-06-01", "api"),
    ]
    # one request at a time: one audit entry each, covering its row
    assert worked.count("audit_entries", "action = 'inquiries.logged'") == 2
    assert worked.count("inquiries", "audit_seq IS NOT NULL") == 2


def test_refused_requests_log_no_inquiry(worked: Api) -> None:
    refused = [
        standing(worked, "city-tax", "promotion-review"),
        standing(worked, "city-personnel", "curiosity"),
        standing(worked, "city-personnel", "promotion-review", subject="s-999"),
        standing(worked, "city-personnel", "promotion-review", as_of="not-a-date"),
        worked.client.get("/v1/subjects/s-001/standing?purpose=promotion-review"),
        worked.client.get(
            "/v1/subjects/s-001/standing?purpose=promotion-review",
            headers={"Authorization": "Bearer credo_000000000000_wrong"},
        ),
    ]
    assert [r.status_code for r in refused] == [403, 403, 404, 422, 401, 401]
    assert worked.count("inquiries") == 0
    assert worked.count("audit_entries", "action = 'inquiries.logged'") == 0
