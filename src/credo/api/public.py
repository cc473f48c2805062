"""The public register: no login, published records only, rate limited per client address."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request

from credo.api.deps import RegisterDep
from credo.api.records import ERRORS
from credo.api.schemas_register import PublicList, PublicSearch
from credo.services.public import public_list, search

router = APIRouter(prefix="/v1/public", tags=["public register"])


def _limited(request: Request) -> None:
    request.app.state.public_rate_limit(request)


Limited = Depends(_limited)
Sort = Annotated[
    Literal["name", "decided_on", "authority", "category", "reference"],
    Query(description="Order by this column (ties: name, newest decision, authority, reference)."),
]
Direction = Annotated[Literal["asc", "desc"], Query(alias="dir")]


@router.get("/lists/{list_id}", response_model=PublicList, responses=ERRORS, dependencies=[Limited])
def get_public_list(
    list_id: str,
    register: RegisterDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    sort: Sort = "name",
    direction: Direction = "asc",
) -> PublicList:
    """A list's published entries (name, authority, category, decision date, legal basis,
    reference).

    ```
    curl 'http://127.0.0.1:8000/v1/public/lists/dishonest'
    ```
    """
    found = public_list(
        register, list_id, limit=limit, offset=offset, sort=sort, direction=direction
    )
    return PublicList.model_validate(found)


@router.get("/search", response_model=PublicSearch, responses=ERRORS, dependencies=[Limited])
def get_public_search(
    register: RegisterDep,
    q: Annotated[str, Query(min_length=2, max_length=100)],
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    sort: Sort = "name",
    direction: Direction = "asc",
) -> PublicSearch:
    """Published entries whose name contains `q` or whose reference is `q`.

    ```
    curl 'http://127.0.0.1:8000/v1/public/search?q=wang'
    ```
    """
    found = search(register, q, limit=limit, offset=offset, sort=sort, direction=direction)
    return PublicSearch.model_validate(found)
