"""Journeys in a real browser: the person objects, the reviewer decides, the person sees
the change and the notice; the administrator; keyboard use; CSRF; security headers.

The journeys share one server and run in file order (the person's objection is what the
reviewer decides). Each takes screenshots (see tests/e2e/conftest.py).
"""

from __future__ import annotations

import re
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from tests.e2e.conftest import Server, Tab


def test_the_person_logs_in_sees_a_record_and_objects(tab: Tab) -> None:
    page = tab.page
    tab.go("/")
    assert page.url.endswith("/login")
    tab.shot("login")
    tab.login("ada")
    assert page.url.endswith("/me")
    assert (
        page.locator("#score").inner_text() == "870"
    )  # 1000 - 100 (court) - 60 (tax) + 30 (merit)
    tab.shot("subject-dashboard")
    page.get_by_role("link", name="Records", exact=True).click()
    tab.shot("subject-records")
    page.get_by_role("link", name="city-court / 2026-EX-17").click()
    assert "Defied an effective court order" in page.inner_text("h1")
    page.get_by_label("Your grounds").fill(
        "I complied with the order on 3 March; receipt attached."
    )
    page.get_by_label("Attachment (optional)").set_input_files(
        files=[{"name": "receipt.txt", "mimeType": "text/plain", "buffer": b"Paid 3 March"}]
    )
    tab.shot("subject-record-objection-form")
    page.get_by_role("button", name="Send my objection").click()
    page.wait_for_load_state()
    assert "/me/cases/" in page.url
    assert "was received" in page.inner_text("main")
    assert page.locator("#case-status").inner_text().startswith("open")
    tab.shot("subject-case-open")
    page.get_by_role("link", name="Who looked").click()
    assert "promotion-review" in page.inner_text("main")
    tab.shot("subject-inquiries")


def test_the_reviewer_decides_with_reasons(tab: Tab) -> None:
    page = tab.page
    tab.login("rev")
    assert page.url.endswith("/review")
    tab.shot("reviewer-queue")
    page.get_by_role("link", name=re.compile(r"^Case \d+$")).first.click()
    assert "I complied with the order" in page.inner_text("#grounds")
    assert page.get_by_role("link", name="receipt.txt").count() == 1
    page.get_by_label("Revoke: the record never counted").check()
    page.get_by_role("button", name="Record the decision").click()  # no reasons yet
    page.wait_for_load_state()
    reasons = page.get_by_label("Reasons (shown to the subject)")
    if reasons.evaluate("el => el.validity.valueMissing"):  # the browser refused to send it
        assert "/decision" not in page.url
    tab.shot("reviewer-case")
    reasons.fill("The receipt shows the order was obeyed before the deadline.")
    page.get_by_role("button", name="Record the decision").click()
    page.wait_for_load_state()
    assert "The decision was recorded" in page.inner_text("main")
    tab.shot("reviewer-case-decided")


def test_the_reviewer_form_refuses_a_decision_without_reasons_server_side(
    tab: Tab, server: Server
) -> None:
    page = tab.page
    tab.login("ada")
    tab.go("/me/review")
    page.get_by_label("What to review").select_option("grade")
    page.get_by_label("Why").fill("My grade ignores my merit award.")
    page.get_by_role("button", name="Ask for review").click()
    page.wait_for_load_state()
    page.context.clear_cookies()
    tab.login("rev")
    page.get_by_role("link", name=re.compile(r"^Case \d+$")).first.click()
    page.get_by_label("Confirm: the automated outcome stands").check()
    page.evaluate("document.querySelector('form.stack').noValidate = true")
    page.get_by_role("button", name="Record the decision").click()
    page.wait_for_load_state()
    error = page.locator("#f-reasons-error")
    assert "reasons" in error.inner_text()
    described = page.get_by_label("Reasons (shown to the subject)").get_attribute(
        "aria-describedby"
    )
    assert "f-reasons-error" in (described or "")
    assert page.evaluate("document.activeElement.id") == "form-errors"  # the script's focus
    tab.shot("reviewer-decision-errors")


def test_the_person_sees_the_change_and_the_notice(tab: Tab) -> None:
    page = tab.page
    tab.login("ada")
    assert page.locator("#score").inner_text() == "970"  # the defiance record was revoked
    page.get_by_role("link", name="Objections & requests").click()
    tab.shot("subject-cases")
    page.get_by_role("link", name=re.compile(r"^\d+$")).last.click()
    assert "revoked" in page.locator("#case-status").inner_text()
    assert "obeyed before the deadline" in page.inner_text("#case-reasons")
    tab.shot("subject-case-decided")
    page.get_by_role("link", name="Notices").click()
    assert "Your objection was decided" in page.inner_text("main")
    tab.shot("subject-notices")
    with page.expect_download() as download:
        page.goto(tab.url + "/me")
        page.get_by_role("link", name="Download as PDF").click()
    assert download.value.suggested_filename == "credo-file-s-001.pdf"


def test_the_admin_creates_a_user_and_views_policy_and_dashboards(tab: Tab) -> None:
    page = tab.page
    tab.login("root")
    assert page.url.endswith("/admin")
    assert page.locator("svg.chart").count() >= 4
    tab.shot("admin-dashboard")
    page.get_by_role("link", name="People").click()
    page.get_by_label("Username").fill("bo.li")
    page.get_by_label("Initial password").fill("a-long-initial-pass")
    page.get_by_label("Role").select_option("subject")
    page.get_by_label("Subject id (subject accounts only)").fill("s-002")
    page.get_by_role("button", name="Create the account").click()
    page.wait_for_load_state()
    assert "bo.li" in page.inner_text("[role=status]")
    tab.shot("admin-people")
    page.get_by_role("link", name="Policies").click()
    tab.shot("admin-policies")
    page.get_by_role("link", name="example-city@2026.1").click()
    assert "Defied an effective court order" in page.inner_text("main")
    assert "Not eligible for promotion" in page.inner_text("main")
    tab.shot("admin-policy")
    page.get_by_role("link", name="API keys").click()
    page.get_by_label("Authority").select_option("city-tax")
    page.get_by_role("button", name="Create a key").click()
    assert page.locator("#new-key").inner_text().startswith("credo_")
    tab.shot("admin-keys")
    page.get_by_role("link", name="Audit").click()
    assert "The audit chain is intact" in page.inner_text("#audit-result")
    tab.shot("admin-audit")


def test_the_login_form_works_with_the_keyboard_alone(tab: Tab) -> None:
    page = tab.page
    tab.go("/login")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"  # focus is visible
    seen = []
    for _ in range(8):
        page.keyboard.press("Tab")
        seen.append(page.evaluate("document.activeElement.id || document.activeElement.tagName"))
        if seen[-1] == "f-username":
            break
    assert seen[-1] == "f-username", seen
    page.keyboard.type("ada")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "f-password"
    page.keyboard.type("ada-subject-pass")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Log in"
    tab.shot("login-keyboard-focus")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/me$"))


def test_a_forged_post_from_another_page_is_refused(tab: Tab, server: Server) -> None:
    page = tab.page
    tab.login("ada")
    page.set_content(
        f'<form id="f" method="post" action="{server.url}/me/review">'
        '<input name="target" value="grade"><input name="grounds" value="forged"></form>'
    )
    with page.expect_navigation():
        page.evaluate("document.getElementById('f').submit()")
    assert "did not come from your current session" in page.inner_text("main")
    tab.shot("csrf-refused")


def test_security_headers_are_present(tab: Tab, server: Server) -> None:
    response = tab.go("/login")
    headers = response.all_headers()
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert "'unsafe-inline'" not in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "same-origin"
    api = _get(server.url + "/v1/me")
    assert "frame-ancestors 'none'" in api["content-security-policy"]


def test_pages_read_on_a_phone(browser: Any, server: Server) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    tab = Tab(page, server.url)
    tab.login("ada")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390 + 1, f"the page scrolls sideways on a phone ({width}px)"
    tab.shot("subject-dashboard-phone")
    context.close()


def test_error_pages_and_docs(tab: Tab) -> None:
    response = tab.go("/no-such-page")
    assert response.status == 404
    assert "This page does not exist" in tab.page.inner_text("h1")
    tab.shot("error-404")
    docs = tab.go("/docs")
    assert docs.status == 200


def _get(url: str) -> dict[str, str]:
    try:
        with urllib.request.urlopen(url) as answer:
            return {k.lower(): v for k, v in answer.headers.items()}
    except urllib.error.HTTPError as error:
        return {k.lower(): v for k, v in error.headers.items()}
