"""Lists for authorities: who is on a list on a day, for a purpose that sees lists."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query

from credo.api.deps import AuthorityDep, RegisterDep
from credo.api.records import ERRORS
from credo.api.schemas_register import ListMembersPublic
from credo.services.lists import list_members

router = APIRouter(prefix="/v1/lists", tags=["lists and measures"])


@router.get(
    "/{list_id}/members",
    response_model=ListMembersPublic,
    response_model_exclude_none=True,
    responses=ERRORS,
)
def get_members(
    list_id: str,
    register: RegisterDep,
    authority: AuthorityDep,
    purpose: Annotated[str, Query(min_length=1, max_length=64)],
    as_of: Annotated[date | None, Query()] = None,
    after: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> ListMembersPublic:
    """The members of a list on a day (default today); each member shown is an inquiry.

    ```
    curl -H "Authorization: Bearer $KEY" \\
      'http://127.0.0.1:8000/v1/lists/dishonest/members?purpose=enforcement-check'
    ```
    """
    page = list_members(
        register,
        authority_id=authority,
        list_id=list_id,
        purpose_id=purpose,
        as_of=as_of,
        after=after,
        limit=limit,
    )
    return ListMembersPublic.model_validate(page.to_json())
