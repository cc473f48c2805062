"""The measures an authority applies: the current set and the change feed."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from credo.api.deps import AuthorityDep, RegisterDep
from credo.api.records import ERRORS
from credo.api.schemas import MAX_ID
from credo.api.schemas_register import MeasureChanges, MeasuresPage
from credo.services.measures import changes, measures

router = APIRouter(prefix="/v1/measures", tags=["lists and measures"])


@router.get("", response_model=MeasuresPage, responses=ERRORS)
def get_measures(
    register: RegisterDep,
    authority: AuthorityDep,
    active: Annotated[bool, Query(description="Only measures that apply now.")] = True,
    after: Annotated[str | None, Query(max_length=400)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> MeasuresPage:
    """Your measures, by subject; keep the first page's `cursor` to follow the changes.

    ```
    curl -H "Authorization: Bearer $KEY" 'http://127.0.0.1:8000/v1/measures?active=true'
    ```
    """
    page = measures(register, authority, active=active, after=after, limit=limit)
    return MeasuresPage.model_validate(page)


@router.get("/changes", response_model=MeasureChanges, responses=ERRORS)
def get_changes(
    register: RegisterDep,
    authority: AuthorityDep,
    since: Annotated[int, Query(ge=0, le=MAX_ID, description="The cursor you last got.")] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> MeasureChanges:
    """Your measures' starts and ends after `since`, in order; never skips or repeats one.

    ```
    curl -H "Authorization: Bearer $KEY" 'http://127.0.0.1:8000/v1/measures/changes?since=0'
    ```
    """
    return MeasureChanges.model_validate(changes(register, authority, since=since, limit=limit))
