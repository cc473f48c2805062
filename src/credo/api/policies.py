"""POST /v1/policies/preview: what activating a candidate policy would change (admins)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from credo.api.deps import AdminUser, RegisterDep
from credo.api.records import ERRORS
from credo.services.preview import preview_policy

router = APIRouter(prefix="/v1/policies", tags=["policies"])

MAX_POLICY_CHARS = 1_000_000


class PreviewCreate(BaseModel):
    """A candidate policy (the TOML text) and the day to compare on (default: today)."""

    model_config = ConfigDict(extra="forbid")

    policy: Annotated[str, Field(min_length=1, max_length=MAX_POLICY_CHARS)]
    as_of: date | None = None
    fairness: bool = True


@router.post("/preview", responses=ERRORS)
def preview(body: PreviewCreate, register: RegisterDep, _admin: AdminUser) -> dict[str, Any]:
    """Score every subject under the active policy and under the candidate, as of one day,
    and report the differences; nothing is stored. A candidate that does not load is a
    422 naming each wrong key (`errors[].field`, e.g. `categories[2].valid_for`).

    ```
    curl -X POST -b "credo_session=$SESSION" -H "Content-Type: application/json" \\
      --data "$(jq -n --rawfile p next.toml '{policy: $p}')" \\
      http://127.0.0.1:8000/v1/policies/preview
    ```
    """
    report = preview_policy(
        register,
        body.policy,
        as_of=body.as_of,
        source="policy",
        with_fairness=body.fairness,
    )
    return report.to_json()
