"""Reviewers: the queue of cases by due date, case pages, attachments and decisions."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from credo.api.deps import RegisterDep, ReviewerUser
from credo.api.records import ERRORS
from credo.api.schemas import BINARY, MAX_ID
from credo.services.cases import attachment_of, decide_case, get_case, queue

router = APIRouter(prefix="/v1/cases", tags=["review"])
CaseId = Annotated[int, Path(ge=1, le=MAX_ID)]


@router.get("", responses=ERRORS)
def get_queue(
    user: ReviewerUser,
    register: RegisterDep,
    status: Annotated[
        str, Query(pattern="^(open|rejected|corrected|revoked|approved|refused|confirmed)$")
    ] = "open",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> JSONResponse:
    """Cases by due date, the most urgent first; `overdue` marks those past their deadline."""
    return JSONResponse(queue(register, status=status, limit=limit, offset=offset))


@router.get("/{case_id}", responses=ERRORS)
def get_one(case_id: CaseId, user: ReviewerUser, register: RegisterDep) -> JSONResponse:
    """One case."""
    return JSONResponse(get_case(register, case_id))


@router.get("/{case_id}/attachment", responses={**ERRORS, 200: BINARY})
def get_attachment(case_id: CaseId, user: ReviewerUser, register: RegisterDep) -> Response:
    """The subject's attachment."""
    name, kind, content = attachment_of(register, case_id)
    return Response(
        content, media_type=kind, headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


class DecisionCreate(BaseModel):
    """A reviewer's decision; reasons are required and shown to the subject."""

    outcome: Literal["reject", "correct", "revoke", "approve", "refuse", "confirm"]
    reasons: str = Field(min_length=1, max_length=5000)
    repair_on: date | None = None
    record_id: int | None = Field(
        default=None, ge=1, le=MAX_ID, description="review: the record to correct"
    )
    changes: dict[str, Any] | None = Field(
        default=None, description="correct: the fields that change, e.g. {'decided_on': ...}"
    )


@router.post("/{case_id}/decision", responses=ERRORS)
def post_decision(
    case_id: CaseId, body: DecisionCreate, user: ReviewerUser, register: RegisterDep
) -> JSONResponse:
    """Decide a case: objections reject/correct/revoke, repairs approve/refuse, reviews
    confirm/correct/revoke. Every decision rescores the subject and notifies them."""
    result = decide_case(
        register,
        case_id,
        reviewer=user.username,
        outcome=body.outcome,
        reasons=body.reasons,
        repair_on=body.repair_on,
        record_id=body.record_id,
        changes=body.changes,
    )
    return JSONResponse(result)
