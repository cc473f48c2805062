"""Promotion review: rank a slate on performance and integrity (purpose promotion-review)."""

from __future__ import annotations

from fastapi import APIRouter

from credo.api.checks import as_of_day
from credo.api.deps import AuthorityDep, RegisterDep
from credo.api.records import ERRORS
from credo.api.schemas_register import PromotionReviewCreate, PromotionReviewResult
from credo.services.promotion import Candidate, review_slate

router = APIRouter(prefix="/v1/promotions", tags=["promotion review"])


@router.post(
    "/review",
    response_model=PromotionReviewResult,
    response_model_exclude_none=True,
    responses=ERRORS,
)
def post_review(
    body: PromotionReviewCreate, register: RegisterDep, authority: AuthorityDep
) -> PromotionReviewResult:
    """Assess and rank the candidates; each candidate is one logged inquiry.

    ```
    curl -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \\
      -d '{"candidates": [{"subject_id": "s-0000001", "performance": 82},
                          {"subject_id": "s-0000002", "performance": 74}]}' \\
      http://127.0.0.1:8000/v1/promotions/review
    ```
    """
    slate = [
        Candidate(c.subject_id, c.performance, f"candidates[{n}]")
        for n, c in enumerate(body.candidates)
    ]
    result = review_slate(register, slate, authority_id=authority, as_of=as_of_day(body.as_of))
    return PromotionReviewResult.model_validate(result)
