"""POST /v1/policies/preview: admins only, nothing stored, problem+json naming the wrong key."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from credo.services.accounts import add_user
from credo.services.preview import preview_policy
from tests.api.conftest import Api, assert_problem
from tests.api.conftest_due import PASSWORD
from tests.factories import WORKED_POLICY, file_rows, record

# Defiance weighs more and lasts longer; volunteering counts less.
CANDIDATE = (
    WORKED_POLICY.replace('version = "1"', 'version = "2"', 1)
    .replace("points = -100", "points = -150", 1)
    .replace('valid_for = "P2Y"\ncap = -200', 'valid_for = "P3Y"\ncap = -300', 1)
    .replace("points = 20", "points = 10", 1)
)


@pytest.fixture
def admin(api: Api) -> Iterator[TestClient]:
    """A logged-in admin's client, over a register with a few records."""
    file_rows(
        api.register,
        "city-court",
        [
            record("C-1", "s-001", "court.order_defiance", "2025-01-10"),
            record("C-2", "s-001", "court.order_defiance", "2026-03-01"),
            record("C-3", "s-002", "court.order_defiance", "2024-02-01"),
        ],
    )
    file_rows(
        api.register, "city-civil", [record("V-1", "s-003", "civic.volunteering", "2026-02-01")]
    )
    for name, role in (("chen.admin", "admin"), ("zhao.reviewer", "reviewer")):
        add_user(api.register, name, PASSWORD, role, actor="test")
    client = TestClient(api.client.app)
    login = client.post("/v1/auth/login", json={"username": "chen.admin", "password": PASSWORD})
    assert login.status_code == 200, login.text
    yield client
    client.close()


def stored(api: Api) -> list[tuple[Any, ...]]:
    return api.rows("SELECT subject_id, score, grade, lists, measures, as_of FROM standings")


def test_an_admin_previews_a_candidate_and_nothing_changes(api: Api, admin: TestClient) -> None:
    before = stored(api)
    versions = api.count("policy_versions")
    response = admin.post("/v1/policies/preview", json={"policy": CANDIDATE})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body == preview_policy(api.register, CANDIDATE).to_json()
    assert (body["active"], body["candidate"], body["subjects"]) == ("worked@1", "worked@2", 3)
    # s-002's 2024 defiance now lasts three years; s-001 loses 300 (new cap) instead of 200
    assert body["score_changed"] == 3
    largest = body["largest_changes"]
    assert [c["subject_id"] for c in largest] == ["s-002", "s-001", "s-003"]
    assert [(c["before"]["score"], c["after"]["score"]) for c in largest] == [
        (1000, 850),
        (800, 700),
        (1020, 1010),
    ]
    assert largest[0]["after"]["explanation"][0]["reference"] == "C-3"
    assert largest[0]["before"]["explanation"] == []
    assert any("valid_for P2Y -> P3Y" in r for r in largest[0]["reasons"])
    dishonest = next(c for c in body["lists"] if c["id"] == "dishonest")
    assert dishonest["entered"] == {"count": 1, "subjects": ["s-002"]}
    measure = next(c for c in body["measures"] if c["id"] == "hr.no_promotion")
    assert measure["authority"] == "city-personnel"
    assert measure["started"]["subjects"] == ["s-002"]
    assert body["fairness"]["by"] == "organisation"
    assert stored(api) == before and api.count("policy_versions") == versions


def test_as_of_and_fairness_can_be_chosen(admin: TestClient) -> None:
    body = admin.post(
        "/v1/policies/preview",
        json={"policy": CANDIDATE, "as_of": "2027-03-01", "fairness": False},
    ).json()
    assert body["as_of"] == "2027-03-01" and body["fairness"] is None
    assert any("rescores as of today" in note for note in body["notes"])


def test_a_wrong_candidate_is_a_problem_naming_the_key(admin: TestClient) -> None:
    bad = CANDIDATE.replace('valid_for = "P3Y"', 'valid_for = "P30Y"', 1)
    body = assert_problem(
        admin.post("/v1/policies/preview", json={"policy": bad}),
        422,
        field="categories[court.order_defiance].valid_for",
    )
    fields = [e["field"] for e in body["errors"]]
    assert "categories[court.order_defiance].valid_for" in fields
    assert_problem(admin.post("/v1/policies/preview", json={"policy": "[policy"}), 422)
    assert_problem(admin.post("/v1/policies/preview", json={}), 422, field="policy")
    changed = WORKED_POLICY.replace("min = 900", "min = 901")  # same version, other text
    assert_problem(admin.post("/v1/policies/preview", json={"policy": changed}), 409)


def test_only_admins_may_preview(api: Api, admin: TestClient) -> None:
    anonymous = TestClient(api.client.app)
    assert_problem(anonymous.post("/v1/policies/preview", json={"policy": CANDIDATE}), 401)
    key = api.client.post(
        "/v1/policies/preview", json={"policy": CANDIDATE}, headers=api.auth("city-court")
    )
    assert_problem(key, 403)
    reviewer = TestClient(api.client.app)
    reviewer.post("/v1/auth/login", json={"username": "zhao.reviewer", "password": PASSWORD})
    assert_problem(reviewer.post("/v1/policies/preview", json={"policy": CANDIDATE}), 403)
