"""POST /v1/auth/login and /logout, GET /v1/me: sessions for people."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from credo.api.deps import SESSION_COOKIE, RegisterDep, UserDep, _cookie
from credo.api.records import ERRORS
from credo.services.accounts import login, logout

router = APIRouter(prefix="/v1", tags=["people"])


class LoginCreate(BaseModel):
    """A username and password."""

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=200)


class UserPublic(BaseModel):
    """Who is logged in."""

    username: str
    role: str
    subject_id: str | None = None
    authority_id: str | None = None


@router.post("/auth/login", response_model=UserPublic, responses=ERRORS)
def post_login(
    body: LoginCreate, request: Request, response: Response, register: RegisterDep
) -> UserPublic:
    """Log in; the session cookie is HttpOnly, SameSite=Lax, and Secure over TLS.

    ```
    curl -c jar -H 'Content-Type: application/json' \\
      -d '{"username": "wang.wei", "password": "..."}' http://127.0.0.1:8000/v1/auth/login
    ```
    """
    client = request.client.host if request.client else "unknown"
    hours = request.app.state.session_hours
    token, user = login(register, body.username, body.password, client=client, hours=hours)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=hours * 3600,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )
    return UserPublic(
        username=user.username,
        role=user.role,
        subject_id=user.subject_id,
        authority_id=user.authority_id,
    )


@router.post("/auth/logout", status_code=204, responses=ERRORS)
def post_logout(
    response: Response, register: RegisterDep, token: Annotated[str | None, Depends(_cookie)]
) -> Response:
    """End the session."""
    if token:
        logout(register, token)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.status_code = 204
    return response


@router.get("/me", response_model=UserPublic, responses=ERRORS)
def get_me(user: UserDep) -> UserPublic:
    """The logged-in person."""
    return UserPublic(
        username=user.username,
        role=user.role,
        subject_id=user.subject_id,
        authority_id=user.authority_id,
    )
