"""Batch checks: up to 1,000 subjects for one purpose, one inquiry each."""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter

from credo.api.deps import AuthorityDep, RegisterDep
from credo.api.records import ERRORS
from credo.api.schemas_register import CheckCreate, CheckResult
from credo.domain.errors import Problem, ValidationError
from credo.services.checks import run_checks

router = APIRouter(prefix="/v1/checks", tags=["standings"])


@router.post("", response_model=CheckResult, response_model_exclude_none=True, responses=ERRORS)
def post_check(body: CheckCreate, register: RegisterDep, authority: AuthorityDep) -> CheckResult:
    """Answer each subject for one purpose (e.g. screening bidders in a procurement).

    ```
    curl -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \\
      -d '{"purpose": "procurement-screening", "subject_ids": ["s-0000001", "s-0000002"]}' \\
      http://127.0.0.1:8000/v1/checks
    ```
    """
    as_of = as_of_day(body.as_of)
    answers = run_checks(
        register,
        authority_id=authority,
        purpose_id=body.purpose,
        subject_ids=body.subject_ids,
        as_of=as_of,
    )
    return CheckResult.model_validate({"purpose": body.purpose, "answers": answers})


def as_of_day(value: str | None) -> date | None:
    """A body's `as_of` as a date, or a 422 naming the field."""
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValidationError(
            "as_of is not a date", [Problem("as_of", f"{value!r} is not YYYY-MM-DD")]
        ) from None
