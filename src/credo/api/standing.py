"""GET /v1/subjects/{id}/standing: a purpose-bound, logged look at one subject."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from credo.api.deps import CallerDep, RegisterDep
from credo.api.records import ERRORS
from credo.api.schemas import StandingPublic
from credo.services.standing import query_standing, query_standing_async
from credo.store.db import is_sqlite

router = APIRouter(prefix="/v1/subjects", tags=["standings"])


@router.get(
    "/{subject_id}/standing",
    response_model=StandingPublic,
    response_model_exclude_none=True,
    responses=ERRORS,
)
async def get_standing(
    subject_id: str,
    register: RegisterDep,
    caller: CallerDep,
    purpose: Annotated[str, Query(min_length=1, max_length=64)],
    as_of: Annotated[date | None, Query()] = None,
) -> JSONResponse:
    """The standing for a declared purpose: only what the purpose sees, only your measures.

    ```
    curl -H "Authorization: Bearer $KEY" \\
      'http://127.0.0.1:8000/v1/subjects/s-0000001/standing?purpose=promotion-review'
    ```
    """
    if caller.api_key is not None and not is_sqlite(register.engine):
        # PostgreSQL with an API key, the hot path: on the event loop, no thread at all.
        shown = await query_standing_async(
            register,
            api_key=caller.api_key,
            subject_id=subject_id,
            purpose_id=purpose,
            as_of=as_of,
        )
        return JSONResponse(shown)

    def lookup() -> dict[str, Any]:
        return query_standing(
            register,
            authority_id=caller.authority(register),
            api_key=caller.api_key,
            subject_id=subject_id,
            purpose_id=purpose,
            as_of=as_of,
        )

    return JSONResponse(await run_in_threadpool(lookup))
