"""Pages for the person on file: standing and its explanation, the score over time, records
with their versions, and the forms to object to a record or ask for its repair."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from credo.api.deps import RegisterDep
from credo.domain.errors import ConflictError, NotFoundError, Problem, ValidationError
from credo.services.cases import (
    MAX_ATTACHMENT,
    Attachment,
    object_to_record,
    request_repair,
    subject_cases,
)
from credo.web.charts import score_chart
from credo.web.deps import SubjectPage
from credo.web.myfile import (
    overview,
    record_row,
    record_versions,
    subject_records,
)
from credo.web.render import field_errors, page, paginate
from credo.web.session import verify_csrf

router = APIRouter(prefix="/me", dependencies=[Depends(verify_csrf)], include_in_schema=False)


def subject_of(user: Any) -> str:
    """The subject id of a logged-in person on file."""
    return str(user.subject_id)


@router.get("")
def dashboard(request: Request, user: SubjectPage, register: RegisterDep) -> HTMLResponse:
    """Score, grade, lists, measures, every point explained, and the score over time."""
    view = overview(register, subject_of(user))
    policy, standing = view.policy, view.standing
    with register.read() as conn:
        current = {
            (r["authority"], r["reference"]): r
            for r in subject_records(conn, policy, subject_of(user), view.today)
            if r["current"]
        }
        cases = [
            c for c in subject_cases(conn, subject_of(user), view.today) if c["status"] == "open"
        ]
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
        rows = subject_records(conn, policy, subject_of(user), register.clock.today())
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
        row = record_row(conn, record_id, subject_of(user))
        if row is None:
            raise NotFoundError(f"record {record_id} is not on your file")
        versions = record_versions(conn, policy, row, today)
        ids = {v["id"] for v in versions}
        cases = [c for c in subject_cases(conn, subject_of(user), today) if c["record_id"] in ids]
    record = next(v for v in versions if v["id"] == record_id)
    version_table = paginate(
        request,
        versions,
        sorts={"version": lambda v: v["version"], "decided_on": lambda v: v["decided_on"]},
        default="version",
    )
    open_kinds = {c["kind"] for c in cases if c["status"] == "open" and c["record_id"] == record_id}
    return page(
        request,
        "me/record.html",
        {
            "record": record,
            "versions": version_table,
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
        case_id = object_to_record(register, subject_of(user), record_id, grounds, file)
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
        case_id = request_repair(register, subject_of(user), record_id, evidence, file)
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
