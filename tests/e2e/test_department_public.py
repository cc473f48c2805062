"""Browser journeys for departments and the public register, in file order on one server.

A department files a record through the form (checked as it types), uploads a file, looks
a subject up and reads its measures; another runs a promotion review; the person sees the
new record and objects; the clock moves past the publication delay (the server restarts
with a later CREDO_TODAY) and the open objection still keeps the record off the public
register; a reviewer rejects the objection; the person sees the decision; the public
register now shows the record. Each page is screenshotted (see tests/e2e/conftest.py).

The server is this module's own (not conftest's shared one), because it restarts on
another day; it is seeded like the shared one, plus the accounts these journeys use.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from credo.bootstrap import build_register
from credo.services.accounts import add_user
from credo.services.subjects import import_subjects
from credo.settings import Settings
from tests.e2e.conftest import ARGS, CHROMIUM, TODAY, Tab, _free_port, _wait, require_browser, seed
from tests.factories import rows, subject

USERS = {
    "court": ("court-dept-pass", "authority", None, "city-court"),
    "hr": ("hr-dept-pass-1", "authority", None, "city-personnel"),
    "cy": ("cy-subject-pass", "subject", "s-003", None),
    "rev": ("rev-reviewer-pass", "reviewer", None, None),  # seeded by conftest.seed
}
REFERENCE = "WEB-2026-1"
DECIDED = "2026-03-10"  # published from 2026-03-25 (15-day delay)
LATER = date(2026, 3, 26)
RECORD_PATH = f"/register/records/city-court/{REFERENCE}"
SERVE = [sys.executable, "-m", "uvicorn", "--factory", "credo.api.app:create_app"]
SERVE += ["--host", "127.0.0.1", "--no-access-log"]


@dataclass
class Deployment:
    """credo under uvicorn on a pinned day; `restart` moves it to another day."""

    home: Path
    url: str = ""
    process: subprocess.Popen[bytes] | None = None

    def start(self, today: date) -> None:
        """Serve the register with CREDO_TODAY = `today`."""
        port = _free_port()
        env = {**os.environ, "CREDO_HOME": str(self.home), "CREDO_TODAY": today.isoformat()}
        env.pop("CREDO_DATABASE_URL", None)
        log = self.home / f"server-{today}.log"
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [*SERVE, "--port", str(port)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.url = f"http://127.0.0.1:{port}"
        _wait(self.url, self.process, log)

    def stop(self) -> None:
        """Stop the server."""
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
            self.process = None

    def restart(self, today: date) -> None:
        """Stop, then serve again on another day."""
        self.stop()
        self.start(today)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """The seeded register served on TODAY; stopped at the end of the module."""
    require_browser()
    home = tmp_path_factory.mktemp("e2e-department")
    seed(home)
    register = build_register(Settings(home=home, database_url=None, today=TODAY))
    import_subjects(register, rows(subject(n) for n in (4, 5)), actor="test", source="e2e")
    for username, (password, role, subject_id, authority_id) in USERS.items():
        if username != "rev":
            add_user(
                register,
                username,
                password,
                role,
                subject_id=subject_id,
                authority_id=authority_id,
                actor="test",
            )
    register.engine.dispose()
    running = Deployment(home)
    running.start(TODAY)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def chromium(deployment: Deployment) -> Iterator[Any]:
    """Debian's Chromium, headless, for this module."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def tab(chromium: Any, deployment: Deployment) -> Iterator[Tab]:
    """A fresh browser context on the deployment's current URL; no CSP violation allowed."""
    context = chromium.new_context(viewport={"width": 1280, "height": 860}, accept_downloads=True)
    page = context.new_page()
    result = Tab(page, deployment.url)
    page.on("console", lambda m: result.errors.append(m.text) if m.type == "error" else None)
    yield result
    context.close()
    assert not [e for e in result.errors if "Content Security Policy" in e], result.errors


def login(tab: Tab, username: str) -> None:
    """Log in through the form."""
    tab.go("/login")
    tab.page.get_by_label("Username").fill(username)
    tab.page.get_by_label("Password").fill(USERS[username][0])
    tab.page.get_by_role("button", name="Log in").click()
    tab.page.wait_for_load_state()


UNLABELLED = """() => Array.from(document.querySelectorAll('input, select, textarea'))
  .filter(el => el.type !== 'hidden' && !(el.labels && el.labels.length))
  .map(el => el.name || el.id)"""


def assert_labelled(tab: Tab) -> None:
    """Every visible form control of the page has a <label>."""
    assert tab.page.evaluate(UNLABELLED) == [], tab.page.url


def test_every_department_form_control_is_labelled_and_reachable_by_keyboard(tab: Tab) -> None:
    page = tab.page
    login(tab, "court")
    for path in ("/department/records/new", "/department/imports", "/department/lookup"):
        tab.go(path)
        assert_labelled(tab)
    tab.go("/register")
    assert_labelled(tab)
    tab.go("/department/records/new")
    names = []
    for _ in range(40):  # forwards through the whole form and out of it: no trap
        page.keyboard.press("Tab")
        names.append(page.evaluate("document.activeElement.name || document.activeElement.tagName"))
        if names[-1] == "A" and "summary" in names:
            break
    fields = ["reference", "subject_id", "category", "decided_on", "occurred_on", "legal_basis"]
    assert list(dict.fromkeys(n for n in names if n in fields)) == fields, names
    assert names[-1] == "A", names  # past the button, into the footer's link


def test_a_department_files_a_record_checked_as_it_types(tab: Tab) -> None:
    page = tab.page
    login(tab, "court")
    assert page.url.endswith("/department")
    tab.shot("department-home")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="File a record").click()
    page.get_by_label("Your document reference").fill(REFERENCE)
    page.get_by_label("Subject id").fill("s-404")
    page.get_by_label("Category").select_option("court.order_defiance")
    page.get_by_label("Decided on").fill("2027-01-01")
    decided_error = page.locator("#f-decided_on-error")
    decided_error.wait_for()
    assert "in the future" in decided_error.inner_text()
    subject_error = page.locator("#f-subject_id-error")
    subject_error.wait_for()
    assert "not registered" in subject_error.inner_text()
    described = page.get_by_label("Decided on").get_attribute("aria-describedby") or ""
    assert "f-decided_on-error" in described
    assert page.get_by_label("Decided on").get_attribute("aria-invalid") == "true"
    tab.shot("department-file-record-checking")
    page.get_by_label("Subject id").fill("s-003")
    page.get_by_label("Decided on").fill(DECIDED)
    page.get_by_label("Legal basis").fill("Civil Procedure Law art. 262")
    page.get_by_label("Summary (optional)").fill("Did not vacate the flat as ordered on 1 March.")
    decided_error.wait_for(state="detached")
    subject_error.wait_for(state="detached")
    page.get_by_role("button", name="File the record").click()
    page.wait_for_load_state()
    assert f"Record {REFERENCE} was filed" in page.inner_text("#filed")
    tab.shot("department-file-record-filed")


def test_a_department_uploads_a_file_and_downloads_the_refused_rows(tab: Tab) -> None:
    page = tab.page
    login(tab, "court")
    page.get_by_role("link", name="Upload", exact=True).click()
    content = (
        "reference,subject_id,category,decided_on,legal_basis,summary\n"
        "UP-1,s-004,court.order_defiance,2026-02-01,CPL art. 262,first\n"
        "UP-2,s-005,tax.arrears,2026-02-02,Tax law,not a court matter\n"
        "UP-3,s-404,court.order_defiance,2026-02-03,CPL art. 262,nobody\n"
    )
    page.get_by_label("File of records").set_input_files(
        files=[{"name": "court.csv", "mimeType": "text/csv", "buffer": content.encode()}]
    )
    page.get_by_role("button", name="Upload and file").click()
    page.wait_for_load_state()
    assert page.locator("#stored").inner_text() == "1"
    assert page.locator("#rejected").inner_text() == "2"
    tab.shot("department-import-results")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download the refused rows (CSV)").click()
    assert download.value.suggested_filename == "court.rejects.csv"
    saved = Path(download.value.path()).read_text()
    assert "may not file" in saved and "is not registered" in saved


def test_a_department_looks_up_a_subject_and_reads_its_measures(tab: Tab) -> None:
    page = tab.page
    login(tab, "court")
    page.get_by_role("link", name="Look up", exact=True).click()
    page.get_by_label("Purpose").select_option("enforcement-check")
    page.get_by_label("Subject id").fill("s-003")
    page.get_by_role("button", name="Look up").click()
    page.wait_for_load_state()
    assert "Dishonest" in page.inner_text("#lookup-lists")
    assert REFERENCE in page.inner_text("#result")
    assert page.locator("#lookup-score").count() == 0  # enforcement-check does not see scores
    tab.shot("department-lookup")
    page.get_by_role("link", name="Measures", exact=True).click()
    assert "s-003" in page.inner_text("main")
    tab.shot("department-measures")
    page.get_by_role("button", name=re.compile(r"^Mark these \d+ changes as seen$")).click()
    page.wait_for_load_state()
    assert "No changes since then" in page.inner_text("main")


def test_personnel_ranks_a_promotion_slate(tab: Tab) -> None:
    page = tab.page
    login(tab, "hr")
    page.get_by_role("link", name="Promotion review").first.click()
    page.get_by_label("Or paste the slate").fill(
        "subject_id,performance\ns-001,92\ns-004,71\ns-005,85\n"
    )
    page.get_by_role("button", name="Rank the slate").click()
    page.wait_for_load_state()
    table = page.inner_text("#ranked")
    # eligible first by combined score, then the blocked ones (s-004 by the upload's UP-1)
    assert table.index("s-005") < table.index("s-001") < table.index("s-004")
    assert "Not eligible for promotion" in table
    tab.shot("department-promotion")


def test_the_person_sees_the_new_record_and_objects(tab: Tab) -> None:
    page = tab.page
    login(tab, "cy")
    page.get_by_role("link", name="Records", exact=True).click()
    page.get_by_role("link", name=f"city-court / {REFERENCE}").click()
    page.get_by_label("Your grounds").fill(
        "I left the flat on 9 March; the bailiff's report says so."
    )
    page.get_by_role("button", name="Send my objection").click()
    page.wait_for_load_state()
    assert page.locator("#case-status").inner_text().startswith("open")
    assert tab.go(RECORD_PATH).status == 404  # not published before decided_on + 15 days


def test_after_the_delay_an_open_objection_still_keeps_it_off_the_register(
    tab: Tab, deployment: Deployment
) -> None:
    deployment.restart(LATER)
    tab.url = deployment.url
    page = tab.page
    response = tab.go(RECORD_PATH)
    assert response.status == 404
    tab.go("/register?q=Person+3")
    assert REFERENCE not in page.inner_text("main")
    tab.shot("public-search-objection-open")


def test_the_reviewer_rejects_the_objection(tab: Tab) -> None:
    page = tab.page
    login(tab, "rev")
    page.get_by_role("link", name=re.compile(r"^Case \d+$")).first.click()
    assert "bailiff" in page.inner_text("#grounds")
    page.get_by_label("Reject: the record stands as filed").check()
    page.get_by_label("Reasons (shown to the subject)").fill(
        "The bailiff's report of 9 March records that the flat was still occupied."
    )
    page.get_by_role("button", name="Record the decision").click()
    page.wait_for_load_state()
    assert "The decision was recorded" in page.inner_text("main")


def test_the_person_sees_the_decision(tab: Tab) -> None:
    page = tab.page
    login(tab, "cy")
    page.get_by_role("link", name="Objections & requests").click()
    page.get_by_role("link", name=re.compile(r"^\d+$")).first.click()
    assert "rejected" in page.locator("#case-status").inner_text()
    assert "still occupied" in page.inner_text("#case-reasons")
    page.get_by_role("link", name="Notices").click()
    assert "Your objection was decided" in page.inner_text("main")


def test_the_public_register_now_shows_the_record_and_nothing_more(tab: Tab) -> None:
    page = tab.page
    tab.go("/login")
    page.get_by_role("link", name="Public register").click()
    page.get_by_label("Search by name or reference").fill(REFERENCE)
    page.get_by_role("button", name="Search").click()
    page.wait_for_load_state()
    tab.shot("public-search")
    page.get_by_role("link", name=re.compile(REFERENCE)).click()
    entry = page.inner_text("#entry")
    for shown in ("Person 3", "City Intermediate", DECIDED, "Civil Procedure Law art. 262"):
        assert shown in entry or shown in page.inner_text("main")
    assert "s-003" not in page.content() and "vacate the flat" not in page.content()
    tab.shot("public-record")
    tab.go("/register")
    page.get_by_role("link", name="Dishonest persons subject to enforcement").click()
    assert REFERENCE in page.inner_text("main")
    tab.shot("public-list")
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    tab.shot("public-list-phone")
