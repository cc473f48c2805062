"""FastAPI dependencies: the register, the logged-in person and the authenticated authority."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from credo.domain.errors import AuthenticationError, PermissionDeniedError
from credo.services.accounts import Role, User, session_user
from credo.services.keys import authenticate, key_prefix
from credo.services.register import Register

SESSION_COOKIE = "credo_session"
_bearer = HTTPBearer(auto_error=False, description="An authority's API key")
_cookie = APIKeyCookie(
    name=SESSION_COOKIE,
    auto_error=False,
    description="The session cookie set by POST /v1/auth/login",
)


def get_register(request: Request) -> Register:
    """The register this app serves."""
    register: Register = request.app.state.register
    return register


RegisterDep = Annotated[Register, Depends(get_register)]


def get_user(
    register: RegisterDep,
    token: Annotated[str | None, Depends(_cookie)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    """The person whose session cookie came with the request.

    An authority's API key is a valid identity but not a person: it gets 403, not 401.
    """
    if not token:
        if credentials is not None and credentials.scheme.lower() == "bearer":
            authority = authenticate(register, credentials.credentials)
            raise PermissionDeniedError(
                f"authority {authority!r} cannot do this with an API key: it needs a person's "
                "session with the right role"
            )
        raise AuthenticationError("log in first (POST /v1/auth/login)")
    return session_user(register, token)


UserDep = Annotated[User, Depends(get_user)]


def require(*roles: Role) -> Callable[[User], User]:
    """A dependency admitting only people with one of these roles."""

    def check(user: UserDep) -> User:
        if user.role not in roles:
            raise PermissionDeniedError(
                f"this needs the role {' or '.join(roles)}; you are {user.role}"
            )
        return user

    return check


SubjectUser = Annotated[User, Depends(require(Role.SUBJECT))]
ReviewerUser = Annotated[User, Depends(require(Role.REVIEWER))]
AdminUser = Annotated[User, Depends(require(Role.ADMIN))]


def get_authority(
    register: RegisterDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    token: Annotated[str | None, Depends(_cookie)],
) -> str:
    """The authority acting: from its API key, or from an authority user's session."""
    if credentials is not None and credentials.scheme.lower() == "bearer":
        return authenticate(register, credentials.credentials)
    if token:
        user = session_user(register, token)
        if user.role == Role.AUTHORITY and user.authority_id:
            return user.authority_id
        raise PermissionDeniedError(f"only authorities may do this; you are {user.role}")
    raise AuthenticationError("an authority API key is required (Authorization: Bearer ...)")


AuthorityDep = Annotated[str, Depends(get_authority)]


@dataclass(frozen=True)
class Caller:
    """An authority acting: its API key (unchecked yet) or its user's authority.

    For hot paths that read the database anyway: the service checks the key inside its own
    first statement instead of in a round trip of its own (see query_standing).
    """

    api_key: str | None = None
    authority_id: str | None = None


def get_caller(
    register: RegisterDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    token: Annotated[str | None, Depends(_cookie)],
) -> Caller:
    """Like `get_authority`, but an API key is left for the service to check.

    A malformed key is refused here (401); a well-formed one is looked up by the service, so
    a wrong key on a request with, say, no purpose gets the 422 before the 401.
    """
    if credentials is not None and credentials.scheme.lower() == "bearer":
        key_prefix(credentials.credentials)
        return Caller(api_key=credentials.credentials)
    return Caller(authority_id=get_authority(register, None, token))


CallerDep = Annotated[Caller, Depends(get_caller)]
