"""Department pages, part one: file a record (checked as you type) and look up a subject.

The filing form posts to the same service as `POST /v1/records` (`file_record`), so the
server's answer is the truth. With JavaScript, `/static/validate.js` also sends the form to
`POST /department/records/check` while the user types; that endpoint runs the API's own
validation (`validate_record`, plus "is the subject registered") and answers each field's
problem as JSON, which the script ties to the field (`aria-describedby`, `aria-invalid`).
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from credo.api.deps import RegisterDep
from credo.domain.errors import (
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    Problem,
    ValidationError,
)
from credo.domain.filing import RECORD_FIELDS, validate_record
from credo.domain.policy import Policy
from credo.services.accounts import User
from credo.services.filing import file_record
from credo.services.register import Register
from credo.services.standing import query_standing
from credo.store import repository
from credo.web.deps import AuthorityPage
from credo.web.render import field_errors, page
from credo.web.session import verify_csrf

router = APIRouter(
    prefix="/department", dependencies=[Depends(verify_csrf)], include_in_schema=False
)
Short = Annotated[str, Form(max_length=2100)]
LABELS = {
    "reference": "Your document reference",
    "subject_id": "Subject id",
    "category": "Category",
    "decided_on": "Decided on",
    "occurred_on": "Occurred on (optional)",
    "legal_basis": "Legal basis",
    "summary": "Summary (optional)",
    "amount": "Amount (optional)",
    "evidence_uri": "Evidence URI (optional)",
}


def authority_of(user: User, register: Register) -> tuple[str, Policy]:
    """The logged-in department's authority id and the active policy."""
    if not user.authority_id:
        raise PermissionDeniedError("this account is not tied to an authority")
    with register.read() as conn:
        _, policy = register.active_policy(conn)
    return user.authority_id, policy


def record_problems(register: Register, authority_id: str, fields: dict[str, Any]) -> list[Problem]:
    """What the API would refuse in these fields: the domain's checks, then the subject."""
    with register.read() as conn:
        _, policy = register.active_policy(conn)
        found = validate_record(
            fields, authority_id=authority_id, policy=policy, today=register.clock.today()
        )
        problems = found if isinstance(found, list) else []
        subject_id = str(fields.get("subject_id") or "").strip()
        checked = any(p.location == "subject_id" for p in problems)
        if subject_id and not checked and not repository.existing_subjects(conn, [subject_id]):
            problems.append(Problem("subject_id", f"subject {subject_id!r} is not registered"))
    return problems


async def _record_fields(request: Request) -> dict[str, str]:
    """The record's fields from the posted form (empty ones left out, as the API would)."""
    form = await request.form()
    fields: dict[str, str] = {}
    for name in RECORD_FIELDS:
        value = form.get(name)
        if isinstance(value, str) and value.strip():
            fields[name] = value
    return fields


def _filing_page(
    request: Request,
    user: User,
    register: Register,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    filed: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    authority_id, policy = authority_of(user, register)
    categories = [
        (c.id, f"{c.name} ({c.id}, {c.points:+d})")
        for c in policy.categories
        if c.id in policy.filable_by(authority_id)
    ]
    return page(
        request,
        "department/file.html",
        {
            "authority_id": authority_id,
            "categories": [("", "— choose —"), *categories],
            "errors": errors or {},
            "values": values or {},
            "labels": LABELS,
            "filed": filed,
            "today": register.clock.today(),
        },
        user=user,
        title="File a record",
        status=status,
    )


@router.get("/records/new")
def new_record(request: Request, user: AuthorityPage, register: RegisterDep) -> HTMLResponse:
    """The filing form (with the outcome of the last filing, after a redirect)."""
    query = request.query_params
    filed = None
    if query.get("filed"):
        filed = {"reference": query["filed"], "created": query.get("created", "1")}
    return _filing_page(request, user, register, filed=filed)


@router.post("/records/new")
async def submit_record(request: Request, user: AuthorityPage, register: RegisterDep) -> Response:
    """File the record through the filing service; refused fields come back tied to the form."""
    authority_id, _ = authority_of(user, register)
    fields = await _record_fields(request)
    try:
        filed = file_record(
            register, fields, authority_id=authority_id, actor=f"web:{user.username}", source="web"
        )
    except (ValidationError, ConflictError) as exc:
        return _filing_page(
            request, user, register, errors=field_errors(exc), values=fields, status=422
        )
    reference = fields.get("reference", "").strip()
    query = urlencode({"filed": reference, "created": "1" if filed.created else "0"})
    return RedirectResponse(f"/department/records/new?{query}", status_code=303)


@router.post("/records/check")
async def check_record(request: Request, user: AuthorityPage, register: RegisterDep) -> Response:
    """As-you-type validation: `{"errors": {field: message}}` by the API's own rules."""
    authority_id, _ = authority_of(user, register)
    problems = record_problems(register, authority_id, await _record_fields(request))
    errors: dict[str, str] = {}
    for problem in problems:
        errors.setdefault(problem.location.split(".")[-1] or "form", problem.message)
    return JSONResponse({"errors": errors})


def _lookup_page(
    request: Request,
    user: User,
    register: Register,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    result: dict[str, Any] | None = None,
    status: int = 200,
) -> HTMLResponse:
    authority_id, policy = authority_of(user, register)
    purposes = [p for p in policy.purposes if authority_id in p.authorities]
    context: dict[str, Any] = {
        "purposes": purposes,
        "purpose_options": [("", "— choose —")]
        + [(p.id, f"{p.id}: sees {', '.join(v.value for v in p.sees)}") for p in purposes],
        "errors": errors or {},
        "values": values or {},
        "result": result,
    }
    if result is not None:
        context.update(
            purpose=policy.purpose_by_id[result["purpose"]],
            lists={r.id: r for r in policy.lists},
            measures={m.id: m for m in policy.measures},
            categories={c.id: c for c in policy.categories},
        )
    return page(
        request,
        "department/lookup.html",
        context,
        user=user,
        title="Look up a subject",
        status=status,
    )


@router.get("/lookup")
def lookup_form(request: Request, user: AuthorityPage, register: RegisterDep) -> HTMLResponse:
    """Choose one of this department's purposes and a subject."""
    return _lookup_page(request, user, register)


@router.post("/lookup")
def lookup_submit(
    request: Request,
    user: AuthorityPage,
    register: RegisterDep,
    purpose: Short = "",
    subject_id: Short = "",
) -> HTMLResponse:
    """The subject's standing as the purpose sees it; logged as an inquiry the subject sees."""
    authority_id, _ = authority_of(user, register)
    values = {"purpose": purpose, "subject_id": subject_id.strip()}
    problems = []
    if not purpose:
        problems.append(Problem("purpose", "choose the purpose of this look-up"))
    if not values["subject_id"]:
        problems.append(Problem("subject_id", "give the subject's id"))
    try:
        if problems:
            raise ValidationError("the look-up is incomplete", problems)
        result = query_standing(
            register, authority_id=authority_id, subject_id=values["subject_id"], purpose_id=purpose
        )
    except (ValidationError, NotFoundError, PermissionDeniedError) as exc:
        status = 404 if isinstance(exc, NotFoundError) else 422
        return _lookup_page(
            request, user, register, errors=field_errors(exc), values=values, status=status
        )
    return _lookup_page(request, user, register, values=values, result=result)
