"""The public register's pages through HTTP: only what DESIGN 5 rule 7 publishes.

The `web` fixture holds C-1 (court.order_defiance, published for two years, decided
2026-01-10) and T-1 (tax.arrears, never published) on s-001 "Person 1"; today is
2026-03-15 and the publication delay is 15 days.
"""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import text

from credo.api.ratelimit import RateLimit
from credo.services.cases import object_to_record
from tests.factories import file_rows, record
from tests.web.conftest import Web

C1 = "/register/records/city-court/C-1"


def test_search_by_name_or_reference_shows_only_the_public_fields(web: Web) -> None:
    page = web.client.get("/register?q=person 1")
    assert page.status_code == 200
    assert "Person 1" in page.text and f'href="{C1}"' in page.text
    assert "Defied an effective court order" in page.text and "2026-01-10" in page.text
    assert "s-001" not in page.text  # no subject id
    assert "court.order_defiance C-1" not in page.text  # no summary
    assert "Tax arrears" not in page.text and "T-1" not in page.text  # never published
    by_reference = web.client.get("/register?q=C-1")
    assert f'href="{C1}"' in by_reference.text
    assert "No published record matches" in web.client.get("/register?q=T-1").text


def test_result_tables_sort_by_their_column_headers(web: Web) -> None:
    page = web.client.get("/register?q=person&sort=decided_on&dir=desc")
    assert page.status_code == 200
    assert 'aria-sort="descending"' in page.text
    assert "sort=decided_on&amp;dir=asc" in page.text  # the header flips the direction
    assert web.client.get("/register?q=person&sort=nonsense").status_code == 200


def test_a_search_too_short_is_an_error_on_its_field(web: Web) -> None:
    page = web.client.get("/register?q=x")
    assert page.status_code == 422
    assert 'id="f-q-error"' in page.text and 'aria-describedby="f-q-hint f-q-error"' in page.text


def test_the_record_page_shows_six_fields_and_nothing_else(web: Web) -> None:
    page = web.client.get(C1)
    assert page.status_code == 200
    for shown in ("Person 1", "City Court", "Defied an effective court order", "2026-01-10"):
        assert shown in page.text
    assert "Test Law art. 1" in page.text and "C-1" in page.text
    assert "s-001" not in page.text and "court.order_defiance C-1" not in page.text
    assert "-100" not in page.text  # no points


def test_a_record_that_is_not_published_today_is_not_found(web: Web) -> None:
    assert web.client.get("/register/records/city-tax/T-1").status_code == 404
    assert web.client.get("/register/records/city-court/NOPE").status_code == 404
    file_rows(
        web.register,
        "city-court",
        [record("C-NEW", "s-002", "court.order_defiance", date(2026, 3, 10))],
    )
    fresh = "/register/records/city-court/C-NEW"
    assert web.client.get(fresh).status_code == 404  # within the 15-day delay
    assert "No published record matches" in web.client.get("/register?q=C-NEW").text
    web.clock.advance(timedelta(days=15))  # 2026-03-30: decided_on + 15 days
    assert web.client.get(fresh).status_code == 200
    assert f'href="{fresh}"' in web.client.get("/register/lists/dishonest").text


def test_an_open_objection_takes_the_record_off_the_register(web: Web) -> None:
    with web.register.engine.connect() as conn:
        record_id = conn.execute(
            text("SELECT id FROM records WHERE reference = 'C-1'")
        ).scalar_one()
    object_to_record(web.register, "s-001", int(record_id), "I complied with the order", None)
    assert web.client.get(C1).status_code == 404
    assert f'href="{C1}"' not in web.client.get("/register?q=person").text
    assert f'href="{C1}"' not in web.client.get("/register/lists/dishonest").text


def test_list_pages_show_the_lists_entries_page_by_page(web: Web) -> None:
    home = web.client.get("/register")
    assert 'href="/register/lists/dishonest"' in home.text
    assert 'href="/register/lists/exemplary"' in home.text
    file_rows(
        web.register,
        "city-court",
        [
            record(f"P-{n:02d}", "s-002", "court.order_defiance", date(2026, 1, 1) + timedelta(n))
            for n in range(25)
        ],
    )
    first = web.client.get("/register/lists/dishonest")
    assert first.status_code == 200
    assert first.text.count('href="/register/records/') == 20
    assert 'rel="next"' in first.text and 'rel="prev"' not in first.text
    second = web.client.get("/register/lists/dishonest?page=2")
    assert second.text.count('href="/register/records/') == 6  # 26 entries in all
    assert 'rel="prev"' in second.text and 'rel="next"' not in second.text
    assert "No published entries" in web.client.get("/register/lists/exemplary").text
    assert web.client.get("/register/lists/nope").status_code == 404


def test_public_pages_need_no_login_and_are_rate_limited_per_client(web: Web) -> None:
    web.client.app.state.public_rate_limit = RateLimit(3)  # type: ignore[attr-defined]
    for _ in range(3):
        assert web.client.get("/register").status_code == 200
    refused = web.client.get(C1)
    assert refused.status_code == 429
    assert "text/html" in refused.headers["content-type"]
    assert "too many requests" in refused.text


def test_everyone_sees_the_public_register_link(web: Web) -> None:
    assert 'href="/register"' in web.client.get("/login").text
    web.login("ada")
    page = web.client.get("/register")
    assert 'aria-current="page">Public register' in page.text and "Log out" in page.text
