"""FastAPI dependencies: the register and the authenticated authority."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from credo.domain.errors import AuthenticationError
from credo.services.keys import authenticate
from credo.services.register import Register

_bearer = HTTPBearer(auto_error=False, description="An authority's API key")


def get_register(request: Request) -> Register:
    """The register this app serves."""
    register: Register = request.app.state.register
    return register


RegisterDep = Annotated[Register, Depends(get_register)]


def get_authority(
    register: RegisterDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The authority whose API key authorised this request."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise AuthenticationError("an authority API key is required (Authorization: Bearer ...)")
    return authenticate(register, credentials.credentials)


AuthorityDep = Annotated[str, Depends(get_authority)]
