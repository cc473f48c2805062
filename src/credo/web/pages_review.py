"""Pages for reviewers: the queue by due date, a case with its record and history, and the
decision form (reasons are required and shown to the subject)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from credo.api.deps import RegisterDep
from credo.domain.errors import ConflictError, Problem, ValidationError
from credo.services.cases import (
    ALLOWED,
    CORRECTABLE,
    CaseKind,
    attachment_of,
    decide_case,
    get_case,
    queue,
)
from credo.services.cases import subject_cases as cases_of
from credo.store import repository
from credo.web.deps import ReviewerPage
from credo.web.myfile import record_row, record_versions, subject_records
from credo.web.render import field_errors, page, paginate
from credo.web.session import verify_csrf

router = APIRouter(prefix="/review", dependencies=[Depends(verify_csrf)], include_in_schema=False)
STATUSES = ("open", "rejected", "corrected", "revoked", "approved", "refused", "confirmed")
QUEUE_LIMIT = 1000
OUTCOME_TEXT = {
    "reject": "Reject: the record stands as filed",
    "correct": "Correct: write a new version of the record",
    "revoke": "Revoke: the record never counted",
    "approve": "Approve: the record stops counting early",
    "refuse": "Refuse: the record keeps counting",
    "confirm": "Confirm: the automated outcome stands",
}


@router.get("")
def review_queue(request: Request, user: ReviewerPage, register: RegisterDep) -> HTMLResponse:
    """Cases by due date, the most urgent first; overdue ones are marked."""
    status = request.query_params.get("status", "open")
    status = status if status in STATUSES else "open"
    rows = queue(register, status=status, limit=QUEUE_LIMIT)
    table = paginate(
        request,
        rows,
        sorts={
            "due_on": lambda c: (c["due_on"], c["id"]),
            "filed_on": lambda c: (c["filed_on"], c["id"]),
            "kind": lambda c: (c["kind"], c["due_on"]),
            "subject": lambda c: (c["subject_id"], c["due_on"]),
            "id": lambda c: c["id"],
        },
        default="due_on",
    )
    return page(
        request,
        "review/queue.html",
        {
            "table": table,
            "status": status,
            "statuses": STATUSES,
            "overdue": sum(1 for c in rows if c["overdue"]),
            "truncated": len(rows) == QUEUE_LIMIT,
            "today": register.clock.today(),
        },
        user=user,
        title="Review queue",
    )


def _case_page(
    request: Request,
    user: Any,
    register: Any,
    case_id: int,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    case = get_case(register, case_id)
    today = register.clock.today()
    with register.read() as conn:
        _, policy = register.active_policy(conn)
        subject = repository.subject_row(conn, case["subject_id"])
        record = versions = None
        if case["record_id"]:
            row = record_row(conn, case["record_id"])
            if row is not None:
                versions = record_versions(conn, policy, row, today)
                record = next(v for v in versions if v["id"] == row.id)
        current = [
            r for r in subject_records(conn, policy, case["subject_id"], today) if r["current"]
        ]
        ids = {v["id"] for v in versions or []}
        related = [
            c
            for c in cases_of(conn, case["subject_id"], today)
            if c["id"] != case_id and (not ids or c["record_id"] in ids)
        ]
    outcomes = [(o.value, OUTCOME_TEXT[o.value]) for o in sorted(ALLOWED[CaseKind(case["kind"])])]
    return page(
        request,
        "review/case.html",
        {
            "case": case,
            "subject": subject,
            "record": record,
            "versions": paginate(
                request,
                versions or [],
                sorts={"version": lambda v: v["version"], "filed_at": lambda v: v["filed_at"]},
                default="version",
            ),
            "record_options": [("", "— none —")]
            + [
                (str(r["id"]), f"{r['authority']} / {r['reference']}: {r['category_name']}")
                for r in current
            ],
            "related": related,
            "outcomes": outcomes,
            "correctable": CORRECTABLE,
            "categories": [(c.id, f"{c.name} ({c.id})") for c in policy.categories],
            "errors": errors or {},
            "values": values or {},
            "decided": request.query_params.get("decided") == "1",
        },
        user=user,
        title=f"Case {case_id}",
        status=status,
    )


@router.get("/cases/{case_id}")
def review_case(
    case_id: int, request: Request, user: ReviewerPage, register: RegisterDep
) -> HTMLResponse:
    """One case: the record and its history, the grounds, the attachment, the decision form."""
    return _case_page(request, user, register, case_id)


@router.get("/cases/{case_id}/attachment")
def review_attachment(case_id: int, user: ReviewerPage, register: RegisterDep) -> Response:
    """The subject's attachment, as a download (never rendered inline)."""
    name, kind, content = attachment_of(register, case_id)
    return Response(
        content,
        media_type=kind,
        headers={"Content-Disposition": f'attachment; filename="{name.replace(chr(34), "")}"'},
    )


Short = Annotated[str, Form(max_length=2000)]


@router.post("/cases/{case_id}/decision")
async def review_decide(
    case_id: int,
    request: Request,
    user: ReviewerPage,
    register: RegisterDep,
    outcome: Short = "",
    reasons: Annotated[str, Form(max_length=6000)] = "",
    repair_on: Short = "",
    record_id: Short = "",
) -> Response:
    """Decide the case with reasons; a correction takes the fields that change."""
    form = await request.form()
    changes = {
        key: str(form.get(f"change_{key}", "")).strip()
        for key in CORRECTABLE
        if str(form.get(f"change_{key}", "")).strip()
    }
    values = {
        "outcome": outcome,
        "reasons": reasons,
        "repair_on": repair_on,
        "record_id": record_id,
    }
    values.update({f"change_{k}": v for k, v in changes.items()})
    try:
        problems = []
        if not outcome:
            problems.append(Problem("outcome", "choose an outcome"))
        if not reasons.strip():
            problems.append(Problem("reasons", "give the reasons: they are shown to the subject"))
        day = None
        if repair_on:
            try:
                day = date.fromisoformat(repair_on)
            except ValueError:
                problems.append(Problem("repair_on", "use a date such as 2026-03-15"))
        target = None
        if record_id:
            if not record_id.isdigit():
                problems.append(Problem("record_id", "choose a record"))
            else:
                target = int(record_id)
        if problems:
            raise ValidationError("the decision is incomplete", problems)
        decide_case(
            register,
            case_id,
            reviewer=user.username,
            outcome=outcome,
            reasons=reasons,
            repair_on=day,
            record_id=target,
            changes=changes if outcome == "correct" else None,
        )
    except (ValidationError, ConflictError) as exc:
        errors = {
            (f"change_{k}" if k in CORRECTABLE else k): v for k, v in field_errors(exc).items()
        }
        return _case_page(
            request, user, register, case_id, errors=errors, values=values, status=422
        )
    return RedirectResponse(f"/review/cases/{case_id}?decided=1", status_code=303)
