"""Pages for the person on file: standing and its explanation, records, cases, notices,
who looked, and the forms to object, ask for repair or for human review."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from credo.api.deps import RegisterDep
from credo.domain.errors import ConflictError, NotFoundError, Problem, ValidationError
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
from credo.web.charts import score_chart
from credo.web.deps import SubjectPage
from credo.web.myfile import (
    overview,
    record_row,
    record_versions,
    subject_inquiries,
    subject_records,
)
from credo.web.render import field_errors, page, paginate
from credo.web.session import verify_csrf

router = APIRouter(prefix="/me", dependencies=[Depends(verify_csrf)], include_in_schema=False)


def _sid(user: Any) -> str:
    return str(user.subject_id)


@router.get("")
def dashboard(request: Request, user: SubjectPage, register: RegisterDep) -> HTMLResponse:
    """Score, grade, lists, measures, every point explained, and the score over time."""
    view = overview(register, _sid(user))
    policy, standing = view.policy, view.standing
    with register.read() as conn:
        current = {
            (r["authority"], r["reference"]): r
            for r in subject_records(conn, policy, _sid(user), view.today)
            if r["current"]
        }
        cases = [c for c in subject_cases(conn, _sid(user), view.today) if c["status"] == "open"]
    lines = [
        {
            **line.to_json(),
            "category_name": policy.category_by_id[line.category].name,
            "record": current.get((line.authority, line.reference)),
        }
        for line in standing.explanation
    ]
    table = paginate(
        request,
        lines,
        sorts={
            "points": lambda r: r["points"],
            "until": lambda r: r["effective_until"],
            "category": lambda r: r["category_name"],
            "authority": lambda r: r["authority"],
        },
        default="until",
    )
    chart = score_chart(
        view.timeline,
        today=view.today,
        bands=[(g.name, g.min) for g in policy.grades],
        title=f"Score of {view.subject.name}, monthly",
        desc=(
            f"From {view.timeline[0][0]} to {view.timeline[-1][0]}; today {view.today} the "
            f"score is {standing.score}. Later points assume nothing new is filed."
        ),
    )
    changes = [
        (day, score)
        for (day, score), (_, before) in zip(view.timeline[1:], view.timeline, strict=False)
        if score != before
    ]
    return page(
        request,
        "me/dashboard.html",
        {
            "view": view,
            "standing": standing,
            "lists": [policy.list_by_id[x] for x in standing.lists if x in policy.list_by_id],
            "measures": [m for m in policy.measures if m.id in standing.measures],
            "table": table,
            "chart": chart,
            "changes": changes,
            "open_cases": cases,
            "base_score": policy.policy.base_score,
        },
        user=user,
        title="My standing",
    )


@router.get("/records")
def my_records(request: Request, user: SubjectPage, register: RegisterDep) -> HTMLResponse:
    """Every record on file, every version, with when it stops counting."""
    with register.read() as conn:
        _, policy = register.active_policy(conn)
        rows = subject_records(conn, policy, _sid(user), register.clock.today())
    table = paginate(
        request,
        rows,
        sorts={
            "decided_on": lambda r: r["decided_on"],
            "ends_on": lambda r: r["ends_on"],
            "reference": lambda r: (r["authority"], r["reference"], r["version"]),
            "category": lambda r: r["category_name"],
            "state": lambda r: r["state"],
        },
        default="decided_on",
        direction="desc",
    )
    return page(request, "me/records.html", {"table": table}, user=user, title="My records")


def _record_page(
    request: Request,
    user: Any,
    register: Any,
    record_id: int,
    *,
    errors: dict[str, str] | None = None,
    form: str = "",
    values: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    today = register.clock.today()
    with register.read() as conn:
        _, policy = register.active_policy(conn)
        row = record_row(conn, record_id, _sid(user))
        if row is None:
            raise NotFoundError(f"record {record_id} is not on your file")
        versions = record_versions(conn, policy, row, today)
        ids = {v["id"] for v in versions}
        cases = [c for c in subject_cases(conn, _sid(user), today) if c["record_id"] in ids]
    record = next(v for v in versions if v["id"] == record_id)
    open_kinds = {c["kind"] for c in cases if c["status"] == "open" and c["record_id"] == record_id}
    return page(
        request,
        "me/record.html",
        {
            "record": record,
            "versions": versions,
            "cases": cases,
            "can_object": record["current"] and "objection" not in open_kinds,
            "can_repair": record["current"]
            and record["counting"]
            and record["repairable"]
            and record["state"] != "repaired"
            and "repair" not in open_kinds,
            "errors": errors or {},
            "form": form,
            "values": values or {},
            "objection_period": str(policy.policy.objection_period),
        },
        user=user,
        title=f"Record {record['authority']} / {record['reference']}",
        status=status,
    )


@router.get("/records/{record_id}")
def my_record(
    record_id: int, request: Request, user: SubjectPage, register: RegisterDep
) -> HTMLResponse:
    """One record: its versions, its cases, and the forms to object or ask for repair."""
    return _record_page(request, user, register, record_id)


async def _upload(upload: UploadFile | None) -> Attachment | None:
    """The optional attachment of a form (an empty file field sends none)."""
    if upload is None or not upload.filename:
        return None
    content = await upload.read(MAX_ATTACHMENT + 1)
    if len(content) > MAX_ATTACHMENT:
        raise ValidationError(
            "the attachment is too large", [Problem("attachment", "the limit is 5 MB")]
        )
    return Attachment(upload.filename, upload.content_type or "application/octet-stream", content)


Text = Annotated[str, Form(max_length=6000)]
Upload = Annotated[UploadFile | None, File()]


@router.post("/records/{record_id}/objection")
async def object_form(
    record_id: int,
    request: Request,
    user: SubjectPage,
    register: RegisterDep,
    grounds: Text = "",
    attachment: Upload = None,
) -> Response:
    """Object to a record; on success, the new case's page."""
    try:
        file = await _upload(attachment)
        case_id = object_to_record(register, _sid(user), record_id, grounds, file)
    except (ValidationError, ConflictError) as exc:
        errors = field_errors(exc)
        return _record_page(
            request,
            user,
            register,
            record_id,
            errors=errors,
            form="objection",
            values={"grounds": grounds},
            status=422,
        )
    return RedirectResponse(f"/me/cases/{case_id}?created=1", status_code=303)


@router.post("/records/{record_id}/repair")
async def repair_form(
    record_id: int,
    request: Request,
    user: SubjectPage,
    register: RegisterDep,
    evidence: Text = "",
    attachment: Upload = None,
) -> Response:
    """Ask for repair of a record; on success, the new case's page."""
    try:
        file = await _upload(attachment)
        case_id = request_repair(register, _sid(user), record_id, evidence, file)
    except (ValidationError, ConflictError) as exc:
        errors = field_errors(exc)
        return _record_page(
            request,
            user,
            register,
            record_id,
            errors=errors,
            form="repair",
            values={"evidence": evidence},
            status=422,
        )
    return RedirectResponse(f"/me/cases/{case_id}?created=1", status_code=303)


@router.get("/cases")
def my_cases(request: Request, user: SubjectPage, register: RegisterDep) -> HTMLResponse:
    """Every objection, repair and review request, with status and deadline."""
    with register.read() as conn:
        cases = subject_cases(conn, _sid(user), register.clock.today())
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
    case = get_case(register, case_id, subject_id=_sid(user))
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
    name, kind, content = attachment_of(register, case_id, subject_id=_sid(user))
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
        case_id = request_review(register, _sid(user), target, grounds)
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
        items = notices_of(conn, _sid(user), policy)
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
        items = subject_inquiries(conn, policy, _sid(user))
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
    data = subject_file(register, _sid(user), actor=f"subject:{_sid(user)}")
    if format == "pdf":
        return Response(
            file_pdf(data),
            media_type="application/pdf",
            headers={"Content-Disposition": f'attachment; filename="credo-file-{_sid(user)}.pdf"'},
        )
    return HTMLResponse(
        file_html(data),
        headers={"Content-Disposition": f'inline; filename="credo-file-{_sid(user)}.html"'},
    )
