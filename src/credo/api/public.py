"""The public register: no login, published records only, rate limited per client address."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from credo.api.deps import RegisterDep
from credo.api.records import ERRORS
from credo.api.schemas_register import PublicList, PublicSearch
from credo.services.public import public_list, search

router = APIRouter(prefix="/v1/public", tags=["public register"])


def _limited(request: Request) -> None:
    request.app.state.public_rate_limit(request)


Limited = Depends(_limited)


@router.get("/lists/{list_id}", response_model=PublicList, responses=ERRORS, dependencies=[Limited])
def get_public_list(
    list_id: str,
    register: RegisterDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> PublicList:
    """A list's published entries (name, authority, category, decision date, legal basis,
    reference).

    ```
    curl 'http://127.0.0.1:8000/v1/public/lists/dishonest'
    ```
    """
    return PublicList.model_validate(public_list(register, list_id, limit=limit, offset=offset))


@router.get("/search", response_model=PublicSearch, responses=ERRORS, dependencies=[Limited])
def get_public_search(
    register: RegisterDep,
    q: Annotated[str, Query(min_length=2, max_length=100)],
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> PublicSearch:
    """Published entries whose name contains `q` or whose reference is `q`.

    ```
    curl 'http://127.0.0.1:8000/v1/public/search?q=wang'
    ```
    """
    return PublicSearch.model_validate(search(register, q, limit=limit, offset=offset))
