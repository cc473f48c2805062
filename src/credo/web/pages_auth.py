"""The start page, logging in and out, and the department's start page."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from credo.api.deps import SESSION_COOKIE, RegisterDep
from credo.domain.errors import AuthenticationError, ThrottledError
from credo.services.accounts import Role, login, logout
from credo.web.deps import AuthorityPage, MaybeUser
from credo.web.render import page
from credo.web.session import PRESESSION_COOKIE, new_presession, touch_session, verify_csrf

router = APIRouter(dependencies=[Depends(verify_csrf)], include_in_schema=False)

HOME = {
    Role.SUBJECT: "/me",
    Role.REVIEWER: "/review",
    Role.ADMIN: "/admin",
    Role.AUTHORITY: "/department",
}


def _safe_next(target: str | None) -> str | None:
    """Only a path on this site (no scheme, no host, no '//'): never an open redirect."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    return target


@router.get("/")
def home(user: MaybeUser) -> Response:
    """A logged-in person goes to their dashboard, everyone else to the login page."""
    if user is None:
        return RedirectResponse("/login", status_code=303)
    return RedirectResponse(HOME[user.role], status_code=303)


def _login_page(
    request: Request,
    *,
    errors: dict[str, str] | None = None,
    username: str = "",
    next_: str = "",
    status: int = 200,
) -> Response:
    presession = request.cookies.get(PRESESSION_COOKIE)
    fresh = None
    if not presession and not request.cookies.get(SESSION_COOKIE):
        fresh = new_presession()
        request.state.presession = fresh
    response = page(
        request,
        "login.html",
        {
            "errors": errors or {},
            "username": username,
            "next": next_,
            "expired": request.query_params.get("expired") == "1",
            "logged_out": request.query_params.get("out") == "1",
            "idle": request.app.state.session_idle_minutes,
        },
        title="Log in",
        status=status,
    )
    if fresh:
        response.set_cookie(
            PRESESSION_COOKIE,
            fresh,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )
    return response


@router.get("/login")
def login_form(request: Request, user: MaybeUser, next: str = "") -> Response:
    """The login form (a logged-in person goes straight on)."""
    if user is not None:
        return RedirectResponse(_safe_next(next) or HOME[user.role], status_code=303)
    return _login_page(request, next_=_safe_next(next) or "")


@router.post("/login")
def login_submit(
    request: Request,
    register: RegisterDep,
    username: Annotated[str, Form(max_length=64)] = "",
    password: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """Check the password, open a session (the API's cookie) and go to the dashboard."""
    errors: dict[str, str] = {}
    if not username.strip():
        errors["username"] = "Enter your username."
    if not password:
        errors["password"] = "Enter your password."
    if errors:
        return _login_page(request, errors=errors, username=username, next_=next, status=422)
    client = request.client.host if request.client else "unknown"
    hours: int = request.app.state.session_hours
    try:
        token, user = login(register, username.strip(), password, client=client, hours=hours)
    except ThrottledError as exc:
        return _login_page(
            request, errors={"form": exc.message}, username=username, next_=next, status=429
        )
    except AuthenticationError:
        return _login_page(
            request,
            errors={"password": "The username or password is wrong."},
            username=username,
            next_=next,
            status=401,
        )
    idle = timedelta(minutes=request.app.state.session_idle_minutes)
    touch_session(register, token, idle=idle, hours=hours)
    response = RedirectResponse(_safe_next(next) or HOME[user.role], status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=hours * 3600,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )
    response.delete_cookie(PRESESSION_COOKIE, path="/")
    return response


@router.post("/logout")
def logout_submit(request: Request, register: RegisterDep) -> Response:
    """End the session and go back to the login page."""
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        logout(register, token)
    response = RedirectResponse("/login?out=1", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/department")
def department(request: Request, user: AuthorityPage, register: RegisterDep) -> Response:
    """A department's start page: what it may file and the purposes it may query for."""
    with register.read() as conn:
        _, policy = register.active_policy(conn)
    authority_id = user.authority_id or ""
    authority = policy.authority_by_id.get(authority_id)
    categories = [policy.category_by_id[c] for c in sorted(policy.filable_by(authority_id))]
    purposes = [p for p in policy.purposes if authority_id in p.authorities]
    measures = [m for m in policy.measures if m.authority == authority_id]
    return page(
        request,
        "department.html",
        {
            "authority": authority,
            "categories": categories,
            "purposes": purposes,
            "measures": measures,
        },
        user=user,
        title=authority.name if authority else "Department",
    )
