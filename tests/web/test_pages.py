"""The pages through HTTP: what each audience sees and the forms they send."""

from __future__ import annotations

import re

from sqlalchemy import text

from tests.web.conftest import Web


def _post(web: Web, page: str, action: str, data: dict[str, str], **kw: object) -> object:
    token = web.csrf(page)
    return web.client.post(action, data={**data, "csrf_token": token}, **kw)  # type: ignore[arg-type]


def _record_id(web: Web, reference: str) -> int:
    with web.register.engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT id FROM records WHERE reference = :r ORDER BY version DESC"),
                {"r": reference},
            ).scalar_one()
        )


def test_the_dashboard_explains_every_point_and_charts_the_score(web: Web) -> None:
    web.login("ada")
    page = web.client.get("/me")
    assert page.status_code == 200, page.text
    assert 'id="score">840<' in page.text  # 1000 - 100 (court) - 60 (tax until 2026-06-01)
    assert "Defied an effective court order" in page.text and "2028-01-10" in page.text
    assert "Tax arrears" in page.text and "2026-06-01" in page.text
    assert "<svg" in page.text and "<title" in page.text
    assert "Dishonest persons subject to enforcement" in page.text


def test_tables_sort_and_page(web: Web) -> None:
    web.login("ada")
    page = web.client.get("/me/records?sort=decided_on&dir=asc")
    assert page.text.index("T-1") < page.text.index("C-1")
    page = web.client.get("/me/records?sort=decided_on&dir=desc")
    assert page.text.index("C-1") < page.text.index("T-1")
    assert 'aria-sort="descending"' in page.text
    bad = web.client.get("/me/records?sort=nope&page=zzz")
    assert bad.status_code == 200


def test_an_objection_without_grounds_is_an_error_on_its_field(web: Web) -> None:
    web.login("ada")
    rid = _record_id(web, "C-1")
    response = _post(web, f"/me/records/{rid}", f"/me/records/{rid}/objection", {"grounds": " "})
    assert response.status_code == 422  # type: ignore[attr-defined]
    body = response.text  # type: ignore[attr-defined]
    assert 'aria-describedby="f-grounds-hint f-grounds-error"' in body
    assert 'id="f-grounds-error"' in body


def test_object_decide_and_see_the_decision(web: Web) -> None:
    web.login("ada")
    rid = _record_id(web, "C-1")
    token = web.csrf(f"/me/records/{rid}")
    sent = web.client.post(
        f"/me/records/{rid}/objection",
        data={"grounds": "I complied on 3 March", "csrf_token": token},
        files={"attachment": ("receipt.txt", b"paid in full", "text/plain")},
        follow_redirects=False,
    )
    assert sent.status_code == 303
    case_page = web.client.get(sent.headers["location"])
    assert "was received" in case_page.text and "receipt.txt" in case_page.text
    case_id = int(re.search(r"/me/cases/(\d+)", sent.headers["location"]).group(1))  # type: ignore[union-attr]

    web.client.cookies.clear()
    web.login("rev")
    queue = web.client.get("/review")
    assert f"/review/cases/{case_id}" in queue.text
    case = web.client.get(f"/review/cases/{case_id}")
    assert "I complied on 3 March" in case.text and "receipt.txt" in case.text
    assert web.client.get(f"/review/cases/{case_id}/attachment").content == b"paid in full"
    no_reasons = _post(
        web,
        f"/review/cases/{case_id}",
        f"/review/cases/{case_id}/decision",
        {"outcome": "revoke", "reasons": ""},
    )
    assert no_reasons.status_code == 422  # type: ignore[attr-defined]
    assert 'id="f-reasons-error"' in no_reasons.text  # type: ignore[attr-defined]
    decided = _post(
        web,
        f"/review/cases/{case_id}",
        f"/review/cases/{case_id}/decision",
        {"outcome": "revoke", "reasons": "The receipt shows the order was obeyed."},
        follow_redirects=False,
    )
    assert decided.status_code == 303  # type: ignore[attr-defined]

    web.client.cookies.clear()
    web.login("ada")
    assert 'id="score">940<' in web.client.get("/me").text
    mine = web.client.get(f"/me/cases/{case_id}").text
    assert "revoked" in mine and "The receipt shows the order was obeyed." in mine
    notices = web.client.get("/me/notices").text
    assert "Your objection was decided" in notices


def test_a_correction_takes_the_changed_fields(web: Web) -> None:
    web.login("ada")
    rid = _record_id(web, "T-1")
    _post(web, f"/me/records/{rid}", f"/me/records/{rid}/objection", {"grounds": "wrong date"})
    case_id = int(
        web.register.engine.connect().execute(text("SELECT max(id) FROM cases")).scalar_one()
    )
    web.client.cookies.clear()
    web.login("rev")
    bad = _post(
        web,
        f"/review/cases/{case_id}",
        f"/review/cases/{case_id}/decision",
        {"outcome": "correct", "reasons": "date", "change_decided_on": "2099-01-01"},
    )
    assert bad.status_code == 422 and 'id="f-change_decided_on-error"' in bad.text  # type: ignore[attr-defined]
    good = _post(
        web,
        f"/review/cases/{case_id}",
        f"/review/cases/{case_id}/decision",
        {"outcome": "correct", "reasons": "date", "change_decided_on": "2025-02-01"},
        follow_redirects=False,
    )
    assert good.status_code == 303  # type: ignore[attr-defined]
    web.client.cookies.clear()
    web.login("ada")
    records = web.client.get("/me/records").text
    assert "superseded" in records and records.count("T-1") == 2


def test_a_review_request_and_the_whole_file(web: Web) -> None:
    web.login("ada")
    sent = _post(
        web,
        "/me/review",
        "/me/review",
        {"target": "list:dishonest", "grounds": "why"},
        follow_redirects=False,
    )
    assert sent.status_code == 303  # type: ignore[attr-defined]
    assert "list:dishonest" in web.client.get("/me/cases").text
    html = web.client.get("/me/file?format=html")
    assert "Everything credo holds on Person 1" in html.text
    pdf = web.client.get("/me/file?format=pdf")
    assert pdf.content.startswith(b"%PDF")
    assert "Who looked" in web.client.get("/me/inquiries").text


def test_admin_creates_people_and_keys_and_sees_policy_dashboard_and_audit(web: Web) -> None:
    web.login("root")
    dash = web.client.get("/admin")
    assert dash.status_code == 200 and dash.text.count("<svg") >= 2  # grades, records
    assert "Nothing to show yet" in dash.text  # no case has been filed
    assert "Grade distribution" in dash.text
    assert "List sizes over time" in dash.text
    assert "city-court" in web.client.get("/admin?by=filed").text
    made = _post(
        web,
        "/admin/people",
        "/admin/people",
        {
            "username": "bo",
            "password": "long-enough-pass",
            "role": "subject",
            "subject_id": "s-002",
        },
        follow_redirects=False,
    )
    assert made.status_code == 303  # type: ignore[attr-defined]
    assert ">bo<" in web.client.get("/admin/people").text
    refused = _post(
        web,
        "/admin/people",
        "/admin/people",
        {"username": "cy", "password": "short", "role": "subject", "subject_id": "s-003"},
    )
    assert refused.status_code == 422 and 'id="f-password-error"' in refused.text  # type: ignore[attr-defined]
    key_page = _post(web, "/admin/keys", "/admin/keys", {"authority_id": "city-tax"})
    key = re.search(r'id="new-key">(credo_[^<]+)<', key_page.text).group(1)  # type: ignore[attr-defined, union-attr]
    standing = "/v1/subjects/s-001/standing?purpose=tax-check"
    assert web.client.get(standing, headers={"Authorization": f"Bearer {key}"}).status_code == 200
    key_id = (
        web.register.engine.connect().execute(text("SELECT max(id) FROM api_keys")).scalar_one()
    )
    _post(web, "/admin/keys", f"/admin/keys/{key_id}/revoke", {})
    assert web.client.get(standing, headers={"Authorization": f"Bearer {key}"}).status_code == 401
    versions = web.client.get("/admin/policies")
    version_id = re.search(r'/admin/policies/(\d+)"', versions.text).group(1)  # type: ignore[union-attr]
    policy = web.client.get(f"/admin/policies/{version_id}").text
    assert "Defied an effective court order" in policy and "promotion-review" in policy
    assert "Not eligible for promotion while listed" in policy
    audit = web.client.get("/admin/audit")
    assert "The audit chain is intact" in audit.text


def test_policy_activation_needs_a_comment(web: Web) -> None:
    from tests.factories import WORKED_POLICY

    web.login("root")
    changed = WORKED_POLICY.replace('version = "1"', 'version = "2"')
    refused = _post(web, "/admin/policies", "/admin/policies", {"text": changed, "comment": " "})
    assert refused.status_code == 422 and 'id="f-comment-error"' in refused.text  # type: ignore[attr-defined]
    done = _post(
        web,
        "/admin/policies",
        "/admin/policies",
        {"text": changed, "comment": "new version"},
        follow_redirects=False,
    )
    assert done.status_code == 303  # type: ignore[attr-defined]
    assert "worked@2" in web.client.get(done.headers["location"]).text  # type: ignore[attr-defined]


def test_a_department_user_sees_what_it_may_file(web: Web) -> None:
    web.login("court")
    page = web.client.get("/department")
    assert "Defied an effective court order" in page.text and "tax-check" in page.text
