"""Pages for the person on file, part two: their cases, the request for human review,
notices, who looked, and the download of the whole file."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from credo.api.deps import RegisterDep
from credo.domain.errors import ConflictError, ValidationError
from credo.services.cases import attachment_of, get_case, request_review, subject_cases
from credo.services.documents import file_html, file_pdf
from credo.services.export import subject_file
from credo.services.notices import notices_of
from credo.web.deps import SubjectPage
from credo.web.myfile import subject_inquiries
from credo.web.pages_me import Text, subject_of
from credo.web.render import field_errors, page, paginate
from credo.web.session import verify_csrf

router = APIRouter(prefix="/me", dependencies=[Depends(verify_csrf)], include_in_schema=False)


@router.get("/cases")
def my_cases(request: Request, user: SubjectPage, register: RegisterDep) -> HTMLResponse:
    """Every objection, repair and review request, with status and deadline."""
    with register.read() as conn:
        cases = subject_cases(conn, subject_of(user), register.clock.today())
    table = paginate(
        request,
        cases,
        sorts={
            "id": lambda c: c["id"],
            "kind": lambda c: c["kind"],
            "filed_on": lambda c: c["filed_on"],
            "due_on": lambda c: c["due_on"],
            "status": lambda c: c["status"],
        },
        default="id",
        direction="desc",
    )
    return page(
        request, "me/cases.html", {"table": table}, user=user, title="My objections and requests"
    )


@router.get("/cases/{case_id}")
def my_case(
    case_id: int, request: Request, user: SubjectPage, register: RegisterDep
) -> HTMLResponse:
    """One case: what was asked, by when it is decided, and the decision with its reasons."""
    case = get_case(register, case_id, subject_id=subject_of(user))
    return page(
        request,
        "me/case.html",
        {"case": case, "created": request.query_params.get("created") == "1"},
        user=user,
        title=f"Case {case_id}",
    )


@router.get("/cases/{case_id}/attachment")
def my_attachment(case_id: int, user: SubjectPage, register: RegisterDep) -> Response:
    """The file sent with one of your cases."""
    name, kind, content = attachment_of(register, case_id, subject_id=subject_of(user))
    return Response(
        content,
        media_type=kind,
        headers={"Content-Disposition": f'attachment; filename="{name.replace(chr(34), "")}"'},
    )


def _review_targets(register: Any) -> list[tuple[str, str]]:
    with register.read() as conn:
        _, policy = register.active_policy(conn)
    return (
        [("grade", "My grade")]
        + [(f"list:{r.id}", f"List: {r.name}") for r in policy.lists]
        + [(f"measure:{m.id}", f"Measure: {m.text} ({m.authority})") for m in policy.measures]
    )


@router.get("/review")
def review_form(request: Request, user: SubjectPage, register: RegisterDep) -> HTMLResponse:
    """Ask a person to review an automated outcome: the grade, a list or a measure."""
    target = request.query_params.get("target", "grade")
    return page(
        request,
        "me/review.html",
        {"targets": _review_targets(register), "errors": {}, "values": {"target": target}},
        user=user,
        title="Ask for human review",
    )


@router.post("/review")
def review_submit(
    request: Request,
    user: SubjectPage,
    register: RegisterDep,
    target: Annotated[str, Form(max_length=128)] = "",
    grounds: Text = "",
) -> Response:
    """File the request for review; on success, the new case's page."""
    try:
        case_id = request_review(register, subject_of(user), target, grounds)
    except (ValidationError, ConflictError) as exc:
        return page(
            request,
            "me/review.html",
            {
                "targets": _review_targets(register),
                "errors": field_errors(exc),
                "values": {"target": target, "grounds": grounds},
            },
            user=user,
            title="Ask for human review",
            status=422,
        )
    return RedirectResponse(f"/me/cases/{case_id}?created=1", status_code=303)


@router.get("/notices")
def my_notices(request: Request, user: SubjectPage, register: RegisterDep) -> HTMLResponse:
    """Every notice about the file, newest first."""
    with register.read() as conn:
        _, policy = register.active_policy(conn)
        items = notices_of(conn, subject_of(user), policy)
    table = paginate(
        request,
        items,
        sorts={"created_at": lambda n: n["created_at"], "title": lambda n: n["title"]},
        default="created_at",
        direction="desc",
    )
    return page(request, "me/notices.html", {"table": table}, user=user, title="My notices")


@router.get("/inquiries")
def my_inquiries(request: Request, user: SubjectPage, register: RegisterDep) -> HTMLResponse:
    """Who looked at the file, when, and for which declared purpose."""
    with register.read() as conn:
        _, policy = register.active_policy(conn)
        items = subject_inquiries(conn, policy, subject_of(user))
    table = paginate(
        request,
        items,
        sorts={
            "at": lambda q: q["at"],
            "authority": lambda q: q["authority"],
            "purpose": lambda q: q["purpose"],
        },
        default="at",
        direction="desc",
    )
    return page(
        request, "me/inquiries.html", {"table": table}, user=user, title="Who looked at my file"
    )


@router.get("/file")
def my_file(user: SubjectPage, register: RegisterDep, format: str = "html") -> Response:
    """The whole file to keep: HTML or PDF (the export is audited)."""
    data = subject_file(register, subject_of(user), actor=f"subject:{subject_of(user)}")
    if format == "pdf":
        return Response(
            file_pdf(data),
            media_type="application/pdf",
            headers={
                "Content-Disposition": f'attachment; filename="credo-file-{subject_of(user)}.pdf"'
            },
        )
    return HTMLResponse(
        file_html(data),
        headers={"Content-Disposition": f'inline; filename="credo-file-{subject_of(user)}.html"'},
    )
