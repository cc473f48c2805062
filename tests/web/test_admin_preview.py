"""The impact preview on the administrators' policy page, then activation from it."""

from __future__ import annotations

from sqlalchemy import text

from tests.factories import WORKED_POLICY
from tests.web.conftest import Web
from tests.web.test_pages import _post

HARSHER = WORKED_POLICY.replace('version = "1"', 'version = "2"').replace(
    "points = -100", "points = -150"
)


def _versions(web: Web) -> int:
    with web.register.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM policy_versions")).scalar_one())


def test_an_admin_previews_a_policy_then_activates_it(web: Web) -> None:
    web.login("root")
    shown = _post(web, "/admin/policies", "/admin/policies/preview", {"text": HARSHER})
    assert shown.status_code == 200, shown.text  # type: ignore[attr-defined]
    body = shown.text  # type: ignore[attr-defined]
    assert "Impact preview" in body and "worked@2" in body and "Nothing has been stored" in body
    assert body.count("<svg") >= 1  # the score distribution (no grade moves: no second chart)
    assert "840 → 790" in body  # s-001: the court record weighs 50 more
    assert "D → D" in body  # already D
    assert _versions(web) == 1  # nothing stored
    done = _post(
        web,
        "/admin/policies",
        "/admin/policies",
        {"text": HARSHER, "comment": "defiance weighs more"},
        follow_redirects=False,
    )
    assert done.status_code == 303  # type: ignore[attr-defined]
    assert _versions(web) == 2


def test_a_broken_policy_is_shown_on_the_form_with_its_key(web: Web) -> None:
    web.login("root")
    broken = HARSHER.replace('valid_for = "P2Y"', 'valid_for = "P20Y"', 1)
    shown = _post(web, "/admin/policies", "/admin/policies/preview", {"text": broken})
    assert shown.status_code == 422  # type: ignore[attr-defined]
    assert "valid_for" in shown.text and "10-year" in shown.text  # type: ignore[attr-defined]
    assert _versions(web) == 1
