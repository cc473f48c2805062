"""The person on file: their notices, their whole file, and the cases they open."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Path, Query, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from credo.api.deps import RegisterDep, SubjectUser
from credo.api.records import ERRORS
from credo.api.schemas import BINARY, MAX_ID
from credo.domain.errors import ValidationError
from credo.services.cases import (
    MAX_ATTACHMENT,
    Attachment,
    attachment_of,
    get_case,
    object_to_record,
    request_repair,
    request_review,
    subject_cases,
)
from credo.services.documents import file_html, file_pdf
from credo.services.export import subject_file
from credo.services.notices import notices_of

router = APIRouter(prefix="/v1/me", tags=["my file"])
CaseId = Annotated[int, Path(ge=1, le=MAX_ID)]


def _subject(user: Any) -> str:
    assert user.subject_id is not None
    return str(user.subject_id)


@router.get("/notices", responses=ERRORS)
def my_notices(user: SubjectUser, register: RegisterDep) -> JSONResponse:
    """Every notice about you, newest first, with its delivery state."""
    with register.read() as conn:
        _, policy = register.active_policy(conn)
        return JSONResponse(notices_of(conn, _subject(user), policy))


@router.get(
    "/file",
    responses={
        **ERRORS,
        200: {"content": {"application/json": {}, "text/html": {}, "application/pdf": {}}},
    },
)
def my_file(
    user: SubjectUser,
    register: RegisterDep,
    format: Annotated[str, Query(pattern="^(json|html|pdf)$")] = "json",
) -> Response:
    """Your whole file: records and versions, standing, history, cases, notices, inquiries."""
    data = subject_file(register, _subject(user), actor=f"subject:{_subject(user)}")
    if format == "html":
        return HTMLResponse(file_html(data))
    if format == "pdf":
        return Response(
            file_pdf(data),
            media_type="application/pdf",
            headers={
                "Content-Disposition": f'attachment; filename="credo-file-{_subject(user)}.pdf"'
            },
        )
    return JSONResponse(data)


@router.get("/cases", responses=ERRORS)
def my_cases(user: SubjectUser, register: RegisterDep) -> JSONResponse:
    """Your objections, repair requests and reviews, with status and deadline."""
    with register.read() as conn:
        return JSONResponse(subject_cases(conn, _subject(user), register.clock.today()))


@router.get("/cases/{case_id}", responses=ERRORS)
def my_case(case_id: CaseId, user: SubjectUser, register: RegisterDep) -> JSONResponse:
    """One of your cases."""
    return JSONResponse(get_case(register, case_id, subject_id=_subject(user)))


@router.get("/cases/{case_id}/attachment", responses={**ERRORS, 200: BINARY})
def my_attachment(case_id: CaseId, user: SubjectUser, register: RegisterDep) -> Response:
    """The file you sent with a case."""
    name, kind, content = attachment_of(register, case_id, subject_id=_subject(user))
    return Response(
        content, media_type=kind, headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


async def _attachment(upload: UploadFile | None) -> Attachment | None:
    if upload is None or not upload.filename:
        return None
    content = await upload.read(MAX_ATTACHMENT + 1)
    if len(content) > MAX_ATTACHMENT:
        raise ValidationError(
            "the attachment is larger than 5 MB", [_p("attachment", "the limit is 5 MB")]
        )
    return Attachment(upload.filename, upload.content_type or "application/octet-stream", content)


def _p(field: str, message: str) -> Any:
    from credo.domain.errors import Problem

    return Problem(field, message)


@router.post("/objections", status_code=201, responses=ERRORS)
async def post_objection(
    user: SubjectUser,
    register: RegisterDep,
    record_id: Annotated[int, Form(ge=1, le=MAX_ID)],
    grounds: Annotated[str, Form(min_length=1, max_length=5000)],
    attachment: Annotated[UploadFile | None, File()] = None,
) -> JSONResponse:
    """Object to one of your records (multipart form; one optional attachment up to 5 MB).

    ```
    curl -b jar -F record_id=12 -F grounds='I complied on 3 March' -F attachment=@receipt.pdf \\
      http://127.0.0.1:8000/v1/me/objections
    ```
    """
    file = await _attachment(attachment)
    case_id = object_to_record(register, _subject(user), record_id, grounds, file)
    return JSONResponse(get_case(register, case_id), status_code=201)


@router.post("/repairs", status_code=201, responses=ERRORS)
async def post_repair(
    user: SubjectUser,
    register: RegisterDep,
    record_id: Annotated[int, Form(ge=1, le=MAX_ID)],
    evidence: Annotated[str, Form(min_length=1, max_length=5000)],
    attachment: Annotated[UploadFile | None, File()] = None,
) -> JSONResponse:
    """Ask for a repairable record's effect to end early, with evidence of corrective action."""
    file = await _attachment(attachment)
    case_id = request_repair(register, _subject(user), record_id, evidence, file)
    return JSONResponse(get_case(register, case_id), status_code=201)


class ReviewCreate(BaseModel):
    """What automated outcome to review, and why."""

    target: str = Field(description="'grade', 'list:<id>' or 'measure:<id>'", max_length=128)
    grounds: str = Field(min_length=1, max_length=5000)


@router.post("/reviews", status_code=201, responses=ERRORS)
def post_review(body: ReviewCreate, user: SubjectUser, register: RegisterDep) -> JSONResponse:
    """Ask a person to review your grade, a list membership or a measure."""
    case_id = request_review(register, _subject(user), body.target, body.grounds)
    return JSONResponse(get_case(register, case_id), status_code=201)
