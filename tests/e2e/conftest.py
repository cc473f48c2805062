"""Fixture strategy for the browser tests.

- `server` starts a real `uvicorn` process on 127.0.0.1 (a free port) over a temporary
  SQLite register seeded with the example policy, three subjects, a few records, one
  inquiry and one account per role. The server's clock is pinned with CREDO_TODAY.
- `browser` is Debian's Chromium (/usr/bin/chromium) driven by Playwright's sync API,
  headless; `page` is a fresh context per test (its own cookies) that records console
  errors (a Content-Security-Policy violation would show up there).
- Without Chromium or Playwright the tests skip with one line saying why; under CI=true
  they fail instead: CI must run them (scripts/test installs both).
- Every test saves screenshots of the pages it visits (into docs/screenshots/ with
  CREDO_SCREENSHOTS=docs/screenshots, else into a scratch folder).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from credo.bootstrap import build_register
from credo.demo import example_policy_text
from credo.services.accounts import add_user
from credo.services.importing import import_records
from credo.services.policies import activate_policy
from credo.services.standing import query_standing
from credo.services.subjects import import_subjects
from credo.settings import Settings
from tests.factories import record, rows, subject

CHROMIUM = Path("/usr/bin/chromium")
TODAY = date(2026, 3, 15)
# Where the screenshots go: a scratch folder, so that a test run leaves the checkout as it
# was; CREDO_SCREENSHOTS=docs/screenshots refreshes the ones the docs show.
SHOTS = Path(
    os.environ.get("CREDO_SCREENSHOTS") or Path(tempfile.gettempdir()) / "credo-screenshots"
)
LOGINS = {
    "ada": ("ada-subject-pass", "subject", "s-001", None),
    "rev": ("rev-reviewer-pass", "reviewer", None, None),
    "root": ("root-admin-pass", "admin", None, None),
}
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _missing() -> str | None:
    """None when the browser tests can run, else a one-line reason."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (apt-get install chromium; scripts/test does it as root)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[test]')"
    return None


def require_browser() -> None:
    """Skip (or, under CI, fail) when Chromium or Playwright is missing."""
    reason = _missing()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (CI=true: the browser tests must run)", pytrace=False)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def seed(home: Path) -> None:
    """The example policy, three people, records on s-001 and s-002, logins, one inquiry."""
    settings = Settings(home=home, database_url=None, today=TODAY)
    register = build_register(settings)
    activate_policy(register, example_policy_text(), actor="test", comment="e2e seed")
    import_subjects(
        register, rows(subject(n) for n in (1, 2, 3)), actor="test", source="e2e subjects"
    )
    filings = {
        "city-court": [
            record("2026-EX-17", "s-001", "court.order_defiance", date(2026, 1, 10)),
            record("2025-EX-03", "s-002", "court.order_defiance", date(2025, 9, 1)),
        ],
        "city-tax": [record("TX-2025-881", "s-001", "tax.arrears", date(2025, 6, 1))],
        "city-personnel": [
            record("HR-2025-12", "s-001", "employment.merit", date(2025, 12, 1)),
        ],
    }
    for authority, items in filings.items():
        import_records(register, rows(items), authority_id=authority, actor="test", source="e2e")
    for username, (password, role, subject_id, authority_id) in LOGINS.items():
        add_user(
            register,
            username,
            password,
            role,
            subject_id=subject_id,
            authority_id=authority_id,
            actor="test",
        )
    query_standing(
        register, authority_id="city-personnel", subject_id="s-001", purpose_id="promotion-review"
    )
    register.engine.dispose()


@dataclass
class Server:
    """A running credo server."""

    url: str
    home: Path
    log: Path


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """credo served by uvicorn over a freshly seeded register."""
    require_browser()
    home = tmp_path_factory.mktemp("e2e-home")
    seed(home)
    port = _free_port()
    log = home / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDO_")}
    env.update(CREDO_HOME=str(home), CREDO_TODAY=TODAY.isoformat())
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "credo.api.app:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-access-log",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait(url, process, log)
            yield Server(url, home, log)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def _wait(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server stopped: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"the server did not answer in 30 s: {log.read_text()[-2000:]}")


@pytest.fixture(scope="session")
def browser(server: Server) -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


UNLABELLED = """[...document.querySelectorAll(
  'input:not([type=hidden]), select, textarea, button')]
  .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
            && !(e.tagName === 'BUTTON' && e.textContent.trim()))
  .map(e => e.outerHTML.slice(0, 120))"""
DUPLICATE_IDS = """(() => { const seen = {}, twice = [];
  document.querySelectorAll('[id]').forEach(e => {
    if (seen[e.id]) twice.push(e.id); seen[e.id] = true; });
  return twice; })()"""


@dataclass
class Tab:
    """One browser context and page, with the server's URL and the console errors seen."""

    page: Any
    url: str
    errors: list[str] = field(default_factory=list)

    def go(self, path: str) -> Any:
        """Open a path of the server."""
        return self.page.goto(self.url + path)

    def shot(self, name: str) -> None:
        """Check the page's accessibility basics, then save the screenshot <name>.png."""
        self.check_accessibility()
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)

    def check_accessibility(self) -> None:
        """Every form control has a label (or an accessible name) and no id is used twice."""
        unlabelled = self.page.evaluate(UNLABELLED)
        assert not unlabelled, f"controls without a label on {self.page.url}: {unlabelled}"
        duplicated = self.page.evaluate(DUPLICATE_IDS)
        assert not duplicated, f"ids used twice on {self.page.url}: {duplicated}"

    def login(self, username: str) -> None:
        """Log in through the form like a person would."""
        self.go("/login")
        self.page.get_by_label("Username").fill(username)
        self.page.get_by_label("Password").fill(LOGINS[username][0])
        self.page.get_by_role("button", name="Log in").click()
        self.page.wait_for_load_state()


@pytest.fixture
def tab(browser: Any, server: Server) -> Iterator[Tab]:
    """A fresh browser context (no cookies) on a desktop-sized window."""
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    result = Tab(page, server.url)
    page.on("console", lambda m: result.errors.append(m.text) if m.type == "error" else None)
    yield result
    context.close()
    assert not [e for e in result.errors if "Content Security Policy" in e], result.errors
