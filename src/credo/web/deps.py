"""Dependencies of the page routes: the logged-in person, by role, and the CSRF check."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request

from credo.api.deps import SESSION_COOKIE, RegisterDep
from credo.domain.errors import AuthenticationError, PermissionDeniedError
from credo.services.accounts import Role, User, session_user


def page_user(request: Request, register: RegisterDep) -> User:
    """The person logged in through the session cookie (else: redirected to the login page)."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise AuthenticationError("log in first")
    return session_user(register, token)


def optional_user(request: Request, register: RegisterDep) -> User | None:
    """The person logged in, or None."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    try:
        return session_user(register, token)
    except AuthenticationError:
        return None


def role(*roles: Role) -> Callable[[User], User]:
    """A dependency admitting only people with one of these roles (else a 403 page)."""

    def check(user: Annotated[User, Depends(page_user)]) -> User:
        if user.role not in roles:
            raise PermissionDeniedError(
                f"this page is for the role {' or '.join(roles)}; you are logged in as {user.role}"
            )
        return user

    return check


PageUser = Annotated[User, Depends(page_user)]
MaybeUser = Annotated[User | None, Depends(optional_user)]
SubjectPage = Annotated[User, Depends(role(Role.SUBJECT))]
ReviewerPage = Annotated[User, Depends(role(Role.REVIEWER))]
AdminPage = Annotated[User, Depends(role(Role.ADMIN))]
AuthorityPage = Annotated[User, Depends(role(Role.AUTHORITY))]
