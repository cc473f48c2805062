"""Department pages through HTTP: filing (checked as you type), uploads with per-row results
and downloadable rejects, look-ups for a purpose, promotion reviews and the measures feed.

The `web` fixture (tests/web/conftest.py) logs in "court" (city-court). Promotion reviews
and measures belong to city-personnel: `hr` adds that account, and `with_promotion`
activates the worked policy with a [promotion] table.
"""

from __future__ import annotations

import csv
import html
import io
import re
from datetime import date

import pytest
from sqlalchemy import text

from credo.services.accounts import add_user
from credo.services.policies import activate_policy
from credo.services.subjects import import_subjects
from tests.factories import WORKED_POLICY, file_rows, record, rows, subject
from tests.web.conftest import Web

RECORD = {
    "reference": "W-1",
    "subject_id": "s-002",
    "category": "court.order_defiance",
    "decided_on": "2026-03-01",
    "legal_basis": "Civil Procedure Law art. 262",
    "summary": "Did not hand over the property as ordered.",
}


def _count(web: Web, sql: str) -> int:
    with web.register.engine.connect() as conn:
        return int(conn.execute(text(sql)).scalar_one())


def _hidden(body: str, name: str) -> str:
    found = re.search(f'name="{name}" value="([^"]*)"', body)
    assert found, f"no hidden {name}"
    return html.unescape(found.group(1))


def _post(web: Web, page: str, action: str, data: dict[str, str], **kw: object) -> object:
    token = web.csrf(page)
    return web.client.post(action, data={**data, "csrf_token": token}, **kw)  # type: ignore[arg-type]


@pytest.fixture
def hr(web: Web) -> Web:
    """A city-personnel account, password hr-pass-12345, logged in."""
    add_user(
        web.register,
        "hr",
        "hr-pass-12345",
        "authority",
        authority_id="city-personnel",
        actor="test",
    )
    token = web.csrf("/login")
    web.client.post(
        "/login",
        data={"username": "hr", "password": "hr-pass-12345", "csrf_token": token},
        follow_redirects=False,
    )
    return web


@pytest.fixture
def with_promotion(web: Web) -> Web:
    """The worked policy, version 2, with promotion weights and contexts."""
    policy = WORKED_POLICY.replace('version = "1"', 'version = "2"') + (
        "\n[promotion]\nweights = { performance = 0.5, integrity = 0.5 }\n"
        'contexts = ["judicial", "tax", "employment", "civic"]\n'
    )
    activate_policy(web.register, policy, actor="test", comment="promotion")
    return web


def test_the_filing_form_files_a_record_and_says_so(web: Web) -> None:
    web.login("court")
    form = web.client.get("/department/records/new")
    assert form.status_code == 200
    assert '<label for="f-reference">' in form.text and 'data-validate="' in form.text
    assert '<script src="/static/validate.js"' in form.text
    assert "Tax arrears" not in form.text  # only what city-court may file
    sent = _post(web, "/department/records/new", "/department/records/new", RECORD)
    assert sent.status_code == 200  # type: ignore[attr-defined]
    assert "Record W-1 was filed" in sent.text  # type: ignore[attr-defined]
    assert _count(web, "SELECT count(*) FROM records WHERE reference = 'W-1'") == 1
    notices = "SELECT count(*) FROM notices WHERE subject_id = 's-002'"
    assert _count(web, notices) >= 1
    again = _post(web, "/department/records/new", "/department/records/new", RECORD)
    assert "was already on file" in again.text  # type: ignore[attr-defined]
    assert _count(web, "SELECT count(*) FROM records WHERE reference = 'W-1'") == 1


def test_a_refused_filing_ties_each_problem_to_its_field(web: Web) -> None:
    web.login("court")
    bad = {
        **RECORD,
        "subject_id": "s-999",
        "decided_on": "2027-01-01",
        "legal_basis": " ",
        "evidence_uri": "not a uri",
    }
    sent = _post(web, "/department/records/new", "/department/records/new", bad)
    assert sent.status_code == 422  # type: ignore[attr-defined]
    body = sent.text  # type: ignore[attr-defined]
    for name in ("decided_on", "legal_basis", "evidence_uri"):
        assert f'id="f-{name}-error"' in body, name
        assert f'aria-describedby="f-{name}-hint f-{name}-error"' in body, name
    assert "is in the future" in body and "is required" in body
    assert 'value="s-999"' in body  # what was typed comes back
    assert _count(web, "SELECT count(*) FROM records WHERE reference = 'W-1'") == 0


def test_the_check_endpoint_answers_the_api_rules_as_json(web: Web) -> None:
    web.login("court")
    token = web.csrf("/department/records/new")
    fields = {
        **RECORD,
        "category": "tax.arrears",
        "subject_id": "s-404",
        "occurred_on": "2026-03-05",
    }
    answer = web.client.post("/department/records/check", data={**fields, "csrf_token": token})
    assert answer.status_code == 200
    errors = answer.json()["errors"]
    assert errors["category"] == "authority 'city-court' may not file 'tax.arrears'"
    assert errors["subject_id"] == "subject 's-404' is not registered"
    assert "is after decided_on" in errors["occurred_on"]
    clean = web.client.post("/department/records/check", data={**RECORD, "csrf_token": token})
    assert clean.json() == {"errors": {}}
    assert _count(web, "SELECT count(*) FROM records WHERE reference = 'W-1'") == 0
    forged = web.client.post("/department/records/check", data=RECORD)
    assert forged.status_code == 403


def test_an_upload_reports_every_row_and_the_rejects_download_as_csv(web: Web) -> None:
    web.login("court")
    content = (
        "reference,subject_id,category,decided_on,legal_basis,summary\n"
        "U-1,s-002,court.order_defiance,2026-02-01,CPL art. 262,first\n"
        "U-2,s-003,court.order_defiance,2026-02-02,CPL art. 262,second\n"
        "U-3,s-003,tax.arrears,2026-02-03,Tax law,not ours\n"
        "U-4,s-404,court.order_defiance,2026-02-04,CPL art. 262,nobody\n"
    )
    token = web.csrf("/department/imports")
    sent = web.client.post(
        "/department/imports",
        data={"csrf_token": token, "format": ""},
        files={"file": ("court.csv", content.encode(), "text/csv")},
    )
    assert sent.status_code == 200, sent.text
    assert 'id="stored">2<' in sent.text and 'id="rejected">2<' in sent.text
    assert "may not file" in sent.text and "is not registered" in sent.text
    download = web.client.post(  # the rejects travel back in the form, not kept on the server
        "/department/imports/rejects.csv",
        data={"csrf_token": token, "csv_text": _hidden(sent.text, "csv_text"), "filename": "x.csv"},
    )
    assert download.status_code == 200
    assert 'filename="x.csv"' in download.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(download.text)))
    assert rows[0] == ["line", "reason", "row"]
    assert [r[0] for r in rows[1:]] == ["4", "5"]
    again = web.client.post(
        "/department/imports",
        data={"csrf_token": token},
        files={"file": ("court.csv", content.encode(), "text/csv")},
    )
    assert 'id="stored">0<' in again.text and 'id="duplicates">2<' in again.text


def test_an_upload_without_a_usable_file_is_an_error_on_the_file_field(web: Web) -> None:
    web.login("court")
    token = web.csrf("/department/imports")
    sent = web.client.post(
        "/department/imports",
        data={"csrf_token": token},
        files={"file": ("court.txt", b"x", "text/plain")},
    )
    assert sent.status_code == 422
    assert 'id="f-file-error"' in sent.text and "name the file .csv or .jsonl" in sent.text
    header = web.client.post(
        "/department/imports",
        data={"csrf_token": token},
        files={"file": ("court.csv", b"foo,reference\n1,2\n", "text/csv")},
    )
    assert header.status_code == 422
    assert "column &#39;foo&#39;: unknown column" in header.text


def test_a_lookup_shows_only_what_the_purpose_sees_and_is_an_inquiry(web: Web) -> None:
    web.login("court")
    form = web.client.get("/department/lookup")
    assert 'value="tax-check"' in form.text and 'value="promotion-review"' not in form.text
    before = _count(web, "SELECT count(*) FROM inquiries WHERE subject_id = 's-001'")
    shown = _post(
        web,
        "/department/lookup",
        "/department/lookup",
        {"purpose": "tax-check", "subject_id": "s-001"},
    )
    body = shown.text  # type: ignore[attr-defined]
    assert shown.status_code == 200, body  # type: ignore[attr-defined]
    assert 'id="lookup-score">840<' in body and 'id="lookup-grade">D<' in body
    assert 'id="lookup-lists"' not in body  # tax-check does not see lists
    assert "Effective records" not in body  # nor the explanation
    after = _count(web, "SELECT count(*) FROM inquiries WHERE subject_id = 's-001'")
    assert after == before + 1
    refused = _post(
        web,
        "/department/lookup",
        "/department/lookup",
        {"purpose": "promotion-review", "subject_id": "s-001"},
    )
    assert refused.status_code == 422  # type: ignore[attr-defined]
    assert 'id="f-purpose-error"' in refused.text  # type: ignore[attr-defined]
    missing = _post(
        web, "/department/lookup", "/department/lookup", {"purpose": "tax-check", "subject_id": "x"}
    )
    assert missing.status_code == 404  # type: ignore[attr-defined]
    assert 'id="f-subject_id-error"' in missing.text  # type: ignore[attr-defined]
    last = _count(web, "SELECT count(*) FROM inquiries WHERE subject_id = 's-001'")
    assert last == after  # refusals are not inquiries


def test_a_promotion_review_ranks_the_slate_and_names_the_blocking_measure(
    with_promotion: Web, hr: Web
) -> None:
    web = hr
    token = web.csrf("/department/promotion")
    slate = "subject_id,performance\ns-001,95\ns-002,70\ns-003,80\n"
    sent = web.client.post(
        "/department/promotion",
        data={"csrf_token": token},
        files={"slate": ("slate.csv", slate.encode(), "text/csv")},
    )
    assert sent.status_code == 200, sent.text
    body = sent.text
    assert body.index("s-003") < body.index("s-002") < body.index("s-001")
    assert "Not eligible for promotion while listed" in body  # s-001 is on the dishonest list
    assert "2 eligible of 3" in body
    inquiries = "SELECT count(*) FROM inquiries WHERE purpose = 'promotion-review'"
    assert _count(web, inquiries) == 3
    pasted = web.client.post(
        "/department/promotion",
        data={"csrf_token": token, "slate_text": "subject_id,performance\ns-002,x\ns-003,120\n"},
    )
    assert pasted.status_code == 422
    assert "line 2.performance" in pasted.text and 'id="f-slate-error"' in pasted.text
    assert _count(web, inquiries) == 3


def test_a_department_without_the_purpose_cannot_run_a_review(web: Web) -> None:
    web.login("court")
    page = web.client.get("/department/promotion")
    assert "may not run promotion reviews" in page.text
    assert 'action="/department/promotion"' not in page.text


def test_measures_show_the_changes_until_marked_seen(hr: Web) -> None:
    web = hr
    page = web.client.get("/department/measures")
    assert page.status_code == 200
    assert "not marked any changes as seen yet" in page.text
    assert "Not eligible for promotion while listed" in page.text and "s-001" in page.text
    cursor = _hidden(page.text, "cursor")
    token = web.csrf("/department/measures")
    done = web.client.post(
        "/department/measures/seen",
        data={"csrf_token": token, "cursor": cursor},
        follow_redirects=False,
    )
    assert done.status_code == 303
    page = web.client.get(done.headers["location"])
    assert "were marked as seen" in page.text and "No changes since then" in page.text
    assert "s-001" in page.text  # still applying today
    file_rows(
        web.register,
        "city-court",
        [record("C-9", "s-003", "court.order_defiance", date(2026, 3, 1))],
    )
    page = web.client.get("/department/measures")
    assert 'id="changes-count"><strong>1</strong> started' in page.text
    assert "s-003" in page.text


def test_a_json_lines_upload_is_filed_like_a_csv(web: Web) -> None:
    web.login("court")
    token = web.csrf("/department/imports")
    line = '{"reference": "J-1", "subject_id": "s-002", "category": "court.order_defiance", '
    line += '"decided_on": "2026-02-01", "legal_basis": "CPL art. 262"}\n'
    sent = web.client.post(
        "/department/imports",
        data={"csrf_token": token, "format": "jsonl"},
        files={"file": ("records.txt", line.encode(), "application/octet-stream")},
    )
    assert sent.status_code == 200, sent.text
    assert 'id="stored">1<' in sent.text and "Download the refused rows" not in sent.text


def test_the_measures_tables_page(hr: Web) -> None:
    web = hr
    people = [subject(n) for n in range(4, 26)]
    import_subjects(web.register, rows(people), actor="test", source="more")
    file_rows(
        web.register,
        "city-court",
        [
            record(f"M-{n}", f"s-{n:03d}", "court.order_defiance", date(2026, 2, 1))
            for n in range(4, 26)
        ],
    )  # 22 more people on the dishonest list: 23 under hr.no_promotion
    first = web.client.get("/department/measures")
    applying = first.text.split('id="current-title"', 1)[1]
    assert applying.count("<tr><td>s-") == 20 and 'rel="next"' in applying
    after = re.search(r'href="(/department/measures\?after=[^"]+)"', applying)
    assert after
    rest = web.client.get(html.unescape(after.group(1))).text.split('id="current-title"', 1)[1]
    assert rest.count("<tr><td>s-") == 3 and "First page" in rest
    changes = first.text.split('id="current-title"', 1)[0]
    assert "23 rows" in changes and "page 1 of 2" in changes
    second = web.client.get("/department/measures?c_page=2").text.split('id="current-title"')[0]
    assert second.count("started</span>") == 3


@pytest.mark.parametrize(
    "path",
    [
        "/department/records/new",
        "/department/imports",
        "/department/lookup",
        "/department/promotion",
        "/department/measures",
    ],
)
def test_department_pages_are_for_departments(web: Web, path: str) -> None:
    anonymous = web.client.get(path, follow_redirects=False)
    assert anonymous.status_code == 303 and "/login" in anonymous.headers["location"]
    web.login("ada")
    assert web.client.get(path, follow_redirects=False).status_code == 403


@pytest.mark.parametrize(
    "action",
    [
        "/department/records/new",
        "/department/records/check",
        "/department/imports",
        "/department/imports/rejects.csv",
        "/department/lookup",
        "/department/promotion",
        "/department/promotion/result.csv",
        "/department/measures/seen",
    ],
)
def test_every_department_form_needs_the_csrf_token(web: Web, action: str) -> None:
    web.login("court")
    assert web.client.post(action, data={"cursor": "1"}).status_code == 403


def test_the_navigation_leads_to_every_department_page(web: Web) -> None:
    web.login("court")
    home = web.client.get("/department")
    for href in ("/department/records/new", "/department/imports", "/department/measures"):
        assert f'href="{href}"' in home.text
    assert 'href="/register"' in home.text
