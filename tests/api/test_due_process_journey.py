"""Due process over HTTP, as a person lives it: filed, told, objecting, reviewed, corrected.

Every step goes through the real app (TestClient) on SQLite and PostgreSQL; accounts are made
with the accounts service, records are filed by authorities with their API keys, and the
clock moves only forward. Dates: the register opens on 2026-03-15 (tests/conftest.py TODAY),
the worked policy's objection period is P30D, so an objection filed that day is due 2026-04-14.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import date

import pytest

from credo.clock import FixedDateClock
from credo.services.audit_verify import verify_audit
from credo.services.policies import activate_policy
from tests.api.conftest import Api, assert_problem
from tests.api.conftest_due import (
    ATTACHMENT,
    ATTACHMENT_SHA256,
    People,
    file_over_http,
    kinds,
    object_over_http,
    record_body,
    standing_of,
)
from tests.factories import WORKED_POLICY

_TAX = (
    'id = "tax.arrears"\nname = "Tax arrears"\ncontext = "tax"\npoints = -60\nvalid_for = "P1Y"\n'
)
# The worked policy, but tax arrears keep counting while disputed (until the objection is
# overdue): the category DESIGN 5.1's "whatever the category" clause is about.
NON_SUSPENDING_POLICY = WORKED_POLICY.replace('version = "1"', 'version = "2"').replace(
    _TAX, _TAX + "suspend_while_disputed = false\n"
)
assert NON_SUSPENDING_POLICY.count("suspend_while_disputed = false") == 1


@pytest.fixture
def people(api: Api) -> Iterator[People]:
    """A subject account for s-001, one for s-002, a reviewer, an admin and a court clerk."""
    people = People(api)
    yield people
    people.close()


def move(clock: FixedDateClock, people: People, day: date) -> None:
    """Move the register's clock forward; sessions (8 hours) have expired by then."""
    clock.day = day
    people.log_in_again()


def decision_url(case_id: int) -> str:
    """Where a reviewer decides a case."""
    return f"/v1/cases/{case_id}/decision"


def notice(notices: list[dict], kind: str) -> dict:
    """The latest notice of a kind (the API lists them newest first)."""
    found = [n for n in notices if n["kind"] == kind]
    assert found, f"no {kind} notice in {kinds(notices)}"
    return found[0]


# --- the journey the issue is judged on ----------------------------------------------------


def test_an_objection_with_an_attachment_is_reviewed_and_the_record_corrected(
    api: Api, people: People, clock: FixedDateClock
) -> None:
    # The court files a court-order-defiance record: s-001 enters the dishonest list.
    record_id = file_over_http(
        api, "city-court", "2026-EX-17", "court.order_defiance", "2026-03-10"
    )
    before = standing_of(api)
    assert (before["lists"], before["measures"]) == (["dishonest"], ["hr.no_promotion"])
    assert [e["reference"] for e in before["explanation"]] == ["2026-EX-17"]

    # The subject logs in: an HttpOnly, SameSite=Lax session cookie.
    response = people.login("subject")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "username": "wang.wei",
        "role": "subject",
        "subject_id": "s-001",
        "authority_id": None,
    }
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("credo_session=")
    assert "httponly" in cookie.lower() and "samesite=lax" in cookie.lower()
    subject = people["subject"]
    assert subject.get("/v1/me").json()["subject_id"] == "s-001"

    # They were told: the record was filed, and they entered the dishonest list.
    notices = subject.get("/v1/me/notices").json()
    filed = notice(notices, "record.filed")
    assert filed["record_id"] == record_id and "2026-EX-17" in filed["text"]
    entered = notice(notices, "standing.changed")
    assert "You entered the list" in entered["text"] and "(dishonest)" in entered["text"]

    # They object, with a small attachment (multipart).
    response = object_over_http(subject, record_id, "I complied with the order on 3 March.")
    assert response.status_code == 201, response.text
    case = response.json()
    case_id = case["id"]
    assert (case["kind"], case["status"], case["record_id"]) == ("objection", "open", record_id)
    assert (case["filed_on"], case["due_on"]) == ("2026-03-15", "2026-04-14")  # filed + 30 days
    assert case["attachment"] == {
        "filename": "receipt.pdf",
        "size": len(ATTACHMENT),
        "sha256": ATTACHMENT_SHA256,
        "content_type": "application/pdf",
    }
    assert subject.get(f"/v1/me/cases/{case_id}").json() == case
    assert [c["id"] for c in subject.get("/v1/me/cases").json()] == [case_id]
    assert subject.get(f"/v1/me/cases/{case_id}/attachment").content == ATTACHMENT

    # court.order_defiance suspends while disputed: off the dishonest list from today...
    during = standing_of(api)
    assert (during["lists"], during["measures"], during["explanation"]) == ([], [], [])
    assert (
        "You left the list"
        in notice(subject.get("/v1/me/notices").json(), "standing.changed")["text"]
    )
    # ...but the days before the objection are not rewritten.
    assert standing_of(api, "2026-03-14")["lists"] == ["dishonest"]

    # Another person's case, filed a day later, is due a day later.
    move(clock, people, date(2026, 3, 16))
    response = people["other_subject"].post(
        "/v1/me/reviews", json={"target": "grade", "grounds": "My grade looks wrong."}
    )
    assert response.status_code == 201, response.text
    review_id = response.json()["id"]

    # The reviewer's queue: by due date, most urgent first; the attachment downloads intact.
    reviewer = people["reviewer"]
    queue = reviewer.get("/v1/cases").json()
    assert [(c["id"], c["due_on"], c["overdue"]) for c in queue] == [
        (case_id, "2026-04-14", False),
        (review_id, "2026-04-15", False),
    ]
    shown = reviewer.get(f"/v1/cases/{case_id}").json()
    assert shown["subject_id"] == "s-001"
    assert shown["grounds"] == "I complied with the order on 3 March."
    download = reviewer.get(f"/v1/cases/{case_id}/attachment")
    assert download.status_code == 200
    assert download.content == ATTACHMENT
    assert hashlib.sha256(download.content).hexdigest() == case["attachment"]["sha256"]
    assert download.headers["content-type"] == "application/pdf"
    assert 'filename="receipt.pdf"' in download.headers["content-disposition"]

    # A decision without reasons is refused, and decides nothing.
    correction = {"outcome": "correct", "changes": {"decided_on": "2026-03-09"}}
    assert_problem(reviewer.post(decision_url(case_id), json=correction), 422, "reasons")
    assert_problem(
        reviewer.post(decision_url(case_id), json=correction | {"reasons": "   "}), 422, "reasons"
    )
    # So is a correction the court could not have filed, or dated in the future.
    for changes, field in (
        ({"category": "tax.arrears"}, "category"),
        ({"decided_on": "2027-01-01"}, "decided_on"),
        ({"authority_id": "city-tax"}, "authority_id"),
    ):
        refused = reviewer.post(
            decision_url(case_id), json=correction | {"changes": changes, "reasons": "Checked."}
        )
        assert_problem(refused, 422, field)
    assert reviewer.get(f"/v1/cases/{case_id}").json()["status"] == "open"
    assert api.count("records") == 1

    # The reviewer corrects the decision date (the record stays one the court may file).
    move(clock, people, date(2026, 3, 20))
    reasons = "The order was served on 9 March, not 10 March: the date is corrected."
    response = reviewer.post(decision_url(case_id), json=correction | {"reasons": reasons})
    assert response.status_code == 200, response.text
    decided = response.json()
    assert (decided["status"], decided["outcome"], decided["reasons"]) == (
        "corrected",
        "correct",
        reasons,
    )
    assert (decided["decided_on"], decided["decided_by"]) == ("2026-03-20", "zhao.reviewer")
    new_id = decided["new_record_id"]
    assert isinstance(new_id, int) and new_id != record_id
    assert [c["id"] for c in reviewer.get("/v1/cases").json()] == [review_id]

    # The corrected record counts again from the decision; the suspension stays in history.
    after = standing_of(api)
    assert after["lists"] == ["dishonest"]
    assert [(e["reference"], e["effective_until"]) for e in after["explanation"]] == [
        ("2026-EX-17", "2028-03-09")
    ]
    assert standing_of(api, "2026-03-19")["lists"] == []

    # The subject is told the decision with its reasons, and that the record was corrected.
    notices = subject.get("/v1/me/notices").json()
    told = notice(notices, "objection.decided")
    assert told["case_id"] == case_id and reasons in told["text"]
    assert notice(notices, "record.corrected")["record_id"] == new_id

    # Their file: both versions, the case with its decision, and every look at them.
    file = subject.get("/v1/me/file").json()
    assert file["subject"]["subject_id"] == "s-001"
    versions = sorted(file["records"], key=lambda r: r["version"])
    assert [(r["id"], r["reference"], r["version"], r["state"]) for r in versions] == [
        (record_id, "2026-EX-17", 1, "superseded"),
        (new_id, "2026-EX-17", 2, "current"),
    ]
    assert (versions[0]["decided_on"], versions[0]["superseded_on"]) == ("2026-03-10", "2026-03-20")
    assert (versions[1]["decided_on"], versions[1]["counts_from"]) == ("2026-03-09", "2026-03-20")
    [in_file] = [c for c in file["cases"] if c["id"] == case_id]
    assert (in_file["status"], in_file["reasons"], in_file["new_record_id"]) == (
        "corrected",
        reasons,
        new_id,
    )
    assert [(h.get("list"), h["event"]) for h in file["history"] if "list" in h] == [
        ("dishonest", "entered"),  # filed
        ("dishonest", "left"),  # objected: suspended
        ("dishonest", "entered"),  # corrected: counts again
    ]
    looks = file["inquiries"]
    assert [(q["authority"], q["purpose"], q["as_of"]) for q in looks] == [
        ("city-personnel", "promotion-review", day)
        for day in ("2026-03-15", "2026-03-15", "2026-03-14", "2026-03-20", "2026-03-19")
    ]
    assert [q["at"][:10] for q in looks] == [
        "2026-03-15",
        "2026-03-15",
        "2026-03-15",
        "2026-03-20",
        "2026-03-20",
    ]
    assert len(looks) == api.count("inquiries", "subject_id = 's-001'")

    # The same file as a page and as a PDF.
    page = subject.get("/v1/me/file", params={"format": "html"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "Person 1" in page.text and "2026-EX-17" in page.text
    pdf = subject.get("/v1/me/file", params={"format": "pdf"})
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")

    # The new version can be disputed in turn; the decided case cannot be decided again.
    again = object_over_http(subject, new_id, "The 9 March date is wrong too.", None)
    assert again.status_code == 201, again.text
    assert again.json()["record_id"] == new_id
    retry = reviewer.post(decision_url(case_id), json={"outcome": "reject", "reasons": "Late."})
    assert_problem(retry, 409)

    # Nothing was written behind the audit chain's back.
    verification = verify_audit(api.register)
    assert verification.problems == [] and verification.ok


# --- the other decisions --------------------------------------------------------------------


def test_an_approved_repair_stops_the_record_counting_from_the_repair_date(
    api: Api, people: People, clock: FixedDateClock
) -> None:
    record_id = file_over_http(
        api, "city-court", "2026-EX-30", "court.order_defiance", "2026-03-01"
    )
    tax_id = file_over_http(api, "city-tax", "TX-2026-9", "tax.arrears", "2026-03-01")
    subject, reviewer = people["subject"], people["reviewer"]

    # Tax arrears are not repairable; court-order defiance is.
    refused = subject.post("/v1/me/repairs", data={"record_id": str(tax_id), "evidence": "Paid."})
    assert_problem(refused, 422, "record_id")
    response = subject.post(
        "/v1/me/repairs",
        data={"record_id": str(record_id), "evidence": "I complied in full on 25 March."},
        files={"attachment": ("proof.pdf", ATTACHMENT, "application/pdf")},
    )
    assert response.status_code == 201, response.text
    case = response.json()
    assert (case["kind"], case["status"], case["due_on"]) == ("repair", "open", "2026-04-14")
    assert case["attachment"]["sha256"] == ATTACHMENT_SHA256
    # A repair request suspends nothing.
    assert standing_of(api)["lists"] == ["dishonest"]

    move(clock, people, date(2026, 4, 1))
    too_early = reviewer.post(
        decision_url(case["id"]),
        json={"outcome": "approve", "repair_on": "2026-02-28", "reasons": "Before the order."},
    )
    assert_problem(too_early, 422, "repair_on")
    reasons = "The court confirms full compliance on 25 March."
    response = reviewer.post(
        decision_url(case["id"]),
        json={"outcome": "approve", "repair_on": "2026-03-25", "reasons": reasons},
    )
    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["repair_on"]) == ("approved", "2026-03-25")

    day_before = standing_of(api, "2026-03-24")
    assert day_before["lists"] == ["dishonest"]
    assert ("2026-EX-30", "2026-03-25") in [
        (e["reference"], e["effective_until"]) for e in day_before["explanation"]
    ]
    day_of = standing_of(api, "2026-03-25")
    assert day_of["lists"] == []
    assert [e["reference"] for e in day_of["explanation"]] == ["TX-2026-9"]
    assert standing_of(api)["lists"] == []

    notices = subject.get("/v1/me/notices").json()
    assert "2026-03-25" in notice(notices, "record.repaired")["text"]
    assert reasons in notice(notices, "repair.decided")["text"]
    [held] = [r for r in subject.get("/v1/me/file").json()["records"] if r["id"] == record_id]
    assert (held["state"], held["repaired_on"], held["effective_until"]) == (
        "repaired",
        "2026-03-25",
        "2026-03-25",
    )


def test_a_revoked_record_never_counted(api: Api, people: People, clock: FixedDateClock) -> None:
    record_id = file_over_http(
        api, "city-court", "2026-EX-40", "court.order_defiance", "2026-03-01"
    )
    assert standing_of(api, "2026-03-10")["lists"] == ["dishonest"]
    subject, reviewer = people["subject"], people["reviewer"]
    response = object_over_http(subject, record_id, "This order was against someone else.", None)
    assert response.status_code == 201, response.text
    case = response.json()
    assert case["attachment"] is None

    move(clock, people, date(2026, 3, 20))
    reasons = "Wrong person: the order named a namesake."
    response = reviewer.post(
        decision_url(case["id"]), json={"outcome": "revoke", "reasons": reasons}
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "revoked"

    # Not even the past keeps it.
    for as_of in ("2026-03-10", "2026-03-14", None):
        shown = standing_of(api, as_of)
        assert (shown["lists"], shown["explanation"]) == ([], []), as_of
    notices = subject.get("/v1/me/notices").json()
    assert notice(notices, "record.revoked")["record_id"] == record_id
    assert reasons in notice(notices, "objection.decided")["text"]
    [held] = subject.get("/v1/me/file").json()["records"]
    assert held["state"] == "revoked"
    # A revoked record cannot be objected to again.
    assert_problem(object_over_http(subject, record_id, "Again."), 409, "record_id")


def test_a_human_review_of_a_list_membership_is_confirmed_with_reasons(
    api: Api, people: People, clock: FixedDateClock
) -> None:
    file_over_http(api, "city-court", "2026-EX-50", "court.order_defiance", "2026-03-01")
    subject, reviewer = people["subject"], people["reviewer"]

    unknown = subject.post("/v1/me/reviews", json={"target": "list:nope", "grounds": "Why?"})
    assert_problem(unknown, 422, "target")
    body = {"target": "list:dishonest", "grounds": "I was never told why I am on this list."}
    response = subject.post("/v1/me/reviews", json=body)
    assert response.status_code == 201, response.text
    case = response.json()
    assert (case["kind"], case["target"], case["record_id"], case["due_on"]) == (
        "review",
        "list:dishonest",
        None,
        "2026-04-14",
    )
    assert_problem(subject.post("/v1/me/reviews", json=body), 409, "target")  # one open at a time

    move(clock, people, date(2026, 3, 25))
    assert_problem(
        reviewer.post(decision_url(case["id"]), json={"outcome": "reject", "reasons": "x"}),
        422,
        "outcome",
    )
    reasons = "The court's order 2026-EX-50 of 1 March puts you on the list until 2028."
    response = reviewer.post(
        decision_url(case["id"]), json={"outcome": "confirm", "reasons": reasons}
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "confirmed"

    assert standing_of(api)["lists"] == ["dishonest"]
    notices = subject.get("/v1/me/notices").json()
    assert notice(notices, "review.requested")["case_id"] == case["id"]
    assert reasons in notice(notices, "review.decided")["text"]
    [mine] = subject.get("/v1/me/cases").json()
    assert (mine["status"], mine["reasons"], mine["decided_on"]) == (
        "confirmed",
        reasons,
        "2026-03-25",
    )


def test_an_overdue_objection_suspends_even_a_record_that_counts_while_disputed(
    api: Api, people: People, clock: FixedDateClock
) -> None:
    activate_policy(api.register, NON_SUSPENDING_POLICY, actor="test", comment="overdue rule")

    def tax(as_of: str | None = None) -> tuple[int, list[str]]:
        shown = standing_of(api, as_of, authority="city-tax", purpose="tax-check")
        return shown["score"], shown["measures"]

    counting, suspended = (940, ["tax.strict"]), (1000, [])
    record_id = file_over_http(api, "city-tax", "TX-2026-4", "tax.arrears", "2026-03-01")
    assert tax() == counting
    subject, reviewer = people["subject"], people["reviewer"]
    response = object_over_http(subject, record_id, "I paid on 28 February.")
    assert response.status_code == 201, response.text
    case = response.json()
    assert case["due_on"] == "2026-04-14"

    # Disputed but not yet overdue: it still counts, up to the day before the due day.
    assert tax() == counting
    assert tax("2026-04-13") == counting
    # From the due day, undecided, it stops counting.
    assert tax("2026-04-14") == suspended
    assert tax("2026-04-30") == suspended

    move(clock, people, date(2026, 4, 13))
    assert [(c["id"], c["overdue"]) for c in reviewer.get("/v1/cases").json()] == [
        (case["id"], False)
    ]
    move(clock, people, date(2026, 4, 14))
    assert [(c["id"], c["overdue"]) for c in reviewer.get("/v1/cases").json()] == [
        (case["id"], True)
    ]

    # Rejected on 20 April: it counts again from the decision, not before.
    move(clock, people, date(2026, 4, 20))
    reasons = "The payment of 28 February was for another tax year."
    response = reviewer.post(
        decision_url(case["id"]), json={"outcome": "reject", "reasons": reasons}
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "rejected"
    assert tax("2026-04-13") == counting
    assert tax("2026-04-19") == suspended
    assert tax("2026-04-20") == counting
    assert tax() == counting
    assert reasons in notice(subject.get("/v1/me/notices").json(), "objection.decided")["text"]
    assert verify_audit(api.register).ok


def test_the_file_page_escapes_what_an_authority_wrote(api: Api, people: People) -> None:
    body = record_body("2026-EX-60", "court.order_defiance", "2026-03-01")
    body["summary"] = '<script>alert("x")</script> defied the order'
    response = api.client.post("/v1/records", json=body, headers=api.auth("city-court"))
    assert response.status_code == 201, response.text
    page = people["subject"].get("/v1/me/file", params={"format": "html"})
    assert page.status_code == 200
    assert "<script>alert" not in page.text
    assert "&lt;script&gt;alert" in page.text


def test_a_review_can_revoke_the_record_behind_a_list_but_only_the_subjects_own(
    api: Api, people: People, clock: FixedDateClock
) -> None:
    own = file_over_http(api, "city-court", "2026-EX-70", "court.order_defiance", "2026-03-01")
    theirs = file_over_http(
        api, "city-court", "2026-EX-71", "court.order_defiance", "2026-03-01", subject="s-002"
    )
    subject, reviewer = people["subject"], people["reviewer"]
    response = subject.post(
        "/v1/me/reviews", json={"target": "list:dishonest", "grounds": "The order was annulled."}
    )
    assert response.status_code == 201, response.text
    case_id = response.json()["id"]
    url = decision_url(case_id)

    move(clock, people, date(2026, 3, 18))
    reasons = "The appeal court annulled the order."
    assert_problem(
        reviewer.post(url, json={"outcome": "revoke", "reasons": reasons}), 422, "record_id"
    )
    someone_elses = {"outcome": "revoke", "reasons": reasons, "record_id": theirs}
    assert_problem(reviewer.post(url, json=someone_elses), 422, "record_id")
    assert standing_of(api, subject="s-002")["lists"] == ["dishonest"]

    response = reviewer.post(url, json={"outcome": "revoke", "reasons": reasons, "record_id": own})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "revoked"
    assert standing_of(api, "2026-03-10")["lists"] == []
    notices = subject.get("/v1/me/notices").json()
    assert notice(notices, "record.revoked")["record_id"] == own
    assert reasons in notice(notices, "review.decided")["text"]
