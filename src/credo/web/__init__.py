"""Server-rendered pages for the people who use credo (Jinja2 templates, no required script).

`install(app)` adds the page routers, the static files, security headers on every response,
the session idle timeout and the HTML error pages; see docs/web.md.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from credo.web.render import HERE


def install(app: FastAPI, *, idle_minutes: int = 30) -> None:
    """Mount the pages and static files on the app, with headers, timeout and error pages."""
    from credo.web.errors import install as install_error_pages
    from credo.web.pages_admin import router as admin_pages
    from credo.web.pages_admin_dashboard import router as dashboard_pages
    from credo.web.pages_admin_preview import router as preview_pages
    from credo.web.pages_auth import router as start_pages
    from credo.web.pages_department import router as department_pages
    from credo.web.pages_department_files import router as department_file_pages
    from credo.web.pages_department_measures import router as department_measure_pages
    from credo.web.pages_me import router as subject_pages
    from credo.web.pages_me_cases import router as subject_case_pages
    from credo.web.pages_public import router as public_pages
    from credo.web.pages_review import router as review_pages
    from credo.web.security import SecurityHeaders
    from credo.web.session import IdleTimeout

    app.state.session_idle_minutes = idle_minutes
    install_error_pages(app)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    for router in (
        start_pages,
        subject_pages,
        subject_case_pages,
        review_pages,
        dashboard_pages,
        preview_pages,
        admin_pages,
        department_pages,
        department_file_pages,
        department_measure_pages,
        public_pages,
    ):
        app.include_router(router)
    app.add_middleware(IdleTimeout)
    app.add_middleware(SecurityHeaders)
