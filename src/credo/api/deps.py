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


async def get_register(request: Request) -> Register:
    """The register this app serves (async: FastAPI runs it on the event loop, no thread)."""
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
    """An authority acting, not yet checked: its API key or its user's session token.

    For hot paths that read the database anyway: the service checks the key inside its own
    first statement instead of in a round trip of its own (see query_standing), and a
    session is looked up in the request's worker thread, not on the event loop.
    """

    api_key: str | None = None
    session_token: str | None = None

    def authority(self, register: Register) -> str | None:
        """The session's authority (None for an API key, which the service checks)."""
        if self.api_key is not None:
            return None
        return get_authority(register, None, self.session_token)


async def get_caller(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    token: Annotated[str | None, Depends(_cookie)],
) -> Caller:
    """Like `get_authority`, but nothing is looked up yet: no database, no thread hop.

    A malformed key is refused here (401); a well-formed one is looked up by the service, so
    a wrong key on a request with, say, no purpose gets the 422 before the 401.
    """
    if credentials is not None and credentials.scheme.lower() == "bearer":
        key_prefix(credentials.credentials)
        return Caller(api_key=credentials.credentials)
    if not token:
        raise AuthenticationError("an authority API key is required (Authorization: Bearer ...)")
    return Caller(session_token=token)


CallerDep = Annotated[Caller, Depends(get_caller)]
