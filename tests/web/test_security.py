"""Security of the pages through HTTP: headers, CSRF, error pages, session idle timeout."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient

from credo.api.app import create_app
from tests.web.conftest import Web

SECURITY_HEADERS = ("X-Content-Type-Options", "Referrer-Policy", "Content-Security-Policy")


def _check_headers(response: object) -> str:
    headers = response.headers  # type: ignore[attr-defined]
    for name in SECURITY_HEADERS:
        assert name in headers, f"{name} missing on {response}"
    assert headers["X-Content-Type-Options"] == "nosniff"
    policy = headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy
    script_src = re.search(r"script-src([^;]*)", policy)
    assert script_src and "'unsafe-inline'" not in script_src.group(1)
    return str(policy)


def test_security_headers_are_on_pages_api_static_and_errors(web: Web) -> None:
    for path in ("/login", "/v1/me", "/healthz", "/static/credo.css", "/no-such-page", "/v1/x"):
        policy = _check_headers(web.client.get(path))
        assert "style-src 'self'" in policy
        assert "'unsafe-inline'" not in policy


def test_pages_are_not_cached_but_static_files_may_be(web: Web) -> None:
    assert web.client.get("/login").headers["Cache-Control"] == "no-store"
    assert "no-store" not in web.client.get("/static/credo.css").headers.get("Cache-Control", "")


def test_api_docs_keep_working_with_their_own_policy(web: Web) -> None:
    docs = web.client.get("/docs")
    assert docs.status_code == 200
    policy = _check_headers(docs)
    assert "'sha256-" in policy and "https://" not in policy  # nothing from a CDN
    assert "/static/swagger/swagger-ui-bundle.js" in docs.text
    assert web.client.get("/static/swagger/swagger-ui-bundle.js").status_code == 200
    assert web.client.get("/openapi.json").json()["info"]["title"] == "credo"


def test_the_downloaded_file_allows_only_its_own_inline_style(web: Web) -> None:
    web.login("ada")
    response = web.client.get("/me/file?format=html")
    assert response.status_code == 200
    policy = _check_headers(response)
    assert "style-src 'self' 'sha256-" in policy and "'unsafe-inline'" not in policy


def test_a_forged_post_without_the_token_is_refused_and_stores_nothing(web: Web) -> None:
    web.login("ada")
    before = _count_cases(web)
    forged = web.client.post("/me/review", data={"target": "grade", "grounds": "forged"})
    assert forged.status_code == 403
    assert "text/html" in forged.headers["content-type"]
    assert "did not come from your current session" in forged.text
    wrong = web.client.post(
        "/me/review", data={"target": "grade", "grounds": "forged", "csrf_token": "0" * 64}
    )
    assert wrong.status_code == 403
    assert _count_cases(web) == before
    token = web.csrf("/me/review")
    ok = web.client.post(
        "/me/review",
        data={"target": "grade", "grounds": "please look again", "csrf_token": token},
        follow_redirects=False,
    )
    assert ok.status_code == 303 and _count_cases(web) == before + 1


def test_another_session_s_token_does_not_work(web: Web) -> None:
    web.login("ada")
    stolen = web.csrf("/me/review")
    web.client.cookies.clear()
    web.login("ada")
    response = web.client.post(
        "/me/review", data={"target": "grade", "grounds": "x", "csrf_token": stolen}
    )
    assert response.status_code == 403


def _page_routes(routes: list[Any], prefix: str = "") -> list[tuple[str, set[str]]]:
    """Every (path, methods) of the app's routes, through included routers."""
    found: list[tuple[str, set[str]]] = []
    for route in routes:
        if hasattr(route, "original_router"):  # a router included into the app
            extra = getattr(route.include_context, "prefix", "") or ""
            found += _page_routes(route.original_router.routes, prefix + extra)
        elif hasattr(route, "methods"):
            found.append((prefix + route.path, set(route.methods)))
    return found


def test_every_form_route_checks_the_token(web: Web) -> None:
    web.login("root")
    posts = [
        path
        for path, methods in _page_routes(web.client.app.routes)  # type: ignore[attr-defined]
        if "POST" in methods and not path.startswith("/v1")
    ]
    assert len(posts) >= 10
    for path in posts:
        concrete = re.sub(r"\{[^}]+\}", "1", path)
        response = web.client.post(concrete, data={"x": "1"}, follow_redirects=False)
        assert response.status_code == 403, (path, response.status_code)
        assert "did not come from your current session" in response.text, path


def test_login_form_needs_its_token_too(web: Web) -> None:
    response = web.client.post("/login", data={"username": "ada", "password": "subject-pass-1"})
    assert response.status_code == 403
    assert web.login("ada").status_code == 303


def _count_cases(web: Web) -> int:
    from sqlalchemy import text

    with web.register.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM cases")).scalar_one())


def test_unknown_pages_get_an_html_page_and_the_api_keeps_problem_json(web: Web) -> None:
    page = web.client.get("/no-such-page")
    assert page.status_code == 404 and "text/html" in page.headers["content-type"]
    assert "This page does not exist" in page.text
    api = web.client.get("/v1/no-such-thing")
    assert api.status_code == 404
    assert api.headers["content-type"].startswith("application/problem+json")


def test_a_page_for_another_role_is_a_403_page(web: Web) -> None:
    web.login("ada")
    response = web.client.get("/admin")
    assert response.status_code == 403
    assert "You may not see this page" in response.text and "admin" in response.text


def test_an_unexpected_error_shows_no_stack_trace(web: Web) -> None:
    app = create_app(web.register)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals")

    @app.get("/v1/boom")
    def api_boom() -> None:
        raise RuntimeError("secret internals")

    with TestClient(app, raise_server_exceptions=False) as client:
        page = client.get("/boom")
        assert page.status_code == 500 and "text/html" in page.headers["content-type"]
        assert "secret internals" not in page.text and "Traceback" not in page.text
        _check_headers(page)
        api = client.get("/v1/boom")
        assert api.status_code == 500
        assert api.headers["content-type"].startswith("application/problem+json")
        assert "secret internals" not in api.text


def test_a_page_needing_a_login_sends_to_the_login_page_and_back(web: Web) -> None:
    response = web.client.get("/me/records", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?next=/me/records")
    token = web.csrf("/login")
    done = web.client.post(
        "/login",
        data={
            "username": "ada",
            "password": "subject-pass-1",
            "csrf_token": token,
            "next": "/me/records",
        },
        follow_redirects=False,
    )
    assert done.headers["location"] == "/me/records"


def test_login_never_redirects_off_site(web: Web) -> None:
    token = web.csrf("/login")
    done = web.client.post(
        "/login",
        data={
            "username": "ada",
            "password": "subject-pass-1",
            "csrf_token": token,
            "next": "//evil.example/x",
        },
        follow_redirects=False,
    )
    assert done.headers["location"] == "/me"


def test_start_page_routes_by_role(web: Web) -> None:
    assert web.client.get("/", follow_redirects=False).headers["location"] == "/login"
    for username, home in (("ada", "/me"), ("rev", "/review"), ("root", "/admin")):
        web.client.cookies.clear()
        web.login(username)
        assert web.client.get("/", follow_redirects=False).headers["location"] == home


def test_a_wrong_password_is_an_error_tied_to_the_field(web: Web) -> None:
    token = web.csrf("/login")
    response = web.client.post(
        "/login", data={"username": "ada", "password": "nope", "csrf_token": token}
    )
    assert response.status_code == 401
    assert 'aria-describedby="f-password-error"' in response.text
    assert 'id="f-password-error"' in response.text


def test_the_session_ends_after_the_idle_timeout(web: Web) -> None:
    web.login("ada")
    for _ in range(3):  # activity keeps the session alive past the idle time in total
        web.clock.advance(timedelta(minutes=20))
        assert web.client.get("/me").status_code == 200
    web.clock.advance(timedelta(minutes=31))
    response = web.client.get("/me", follow_redirects=False)
    assert response.status_code == 303 and "expired=1" in response.headers["location"]
    assert web.client.get("/v1/me").status_code == 401


def test_logging_out_ends_the_session(web: Web) -> None:
    web.login("ada")
    token = web.csrf("/me")
    out = web.client.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    assert out.headers["location"] == "/login?out=1"
    assert web.client.get("/me", follow_redirects=False).status_code == 303
