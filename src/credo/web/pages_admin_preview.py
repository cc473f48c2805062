"""The impact preview on the administrators' policy page: charts and tables, then activation.

The admin uploads or pastes a candidate policy and presses "Preview the impact": the page
shows what activating it would do (credo.services.preview, nothing stored), with a form that
carries the same text on to activation with its required comment.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse

from credo.api.deps import RegisterDep
from credo.domain.errors import ConflictError, PolicyError, ValidationError
from credo.services.preview import preview_policy
from credo.web.charts import bar_chart, line_chart
from credo.web.deps import AdminPage
from credo.web.pages_admin import MAX_POLICY, policies_page, uploaded_policy
from credo.web.render import page
from credo.web.session import verify_csrf

router = APIRouter(prefix="/admin", dependencies=[Depends(verify_csrf)], include_in_schema=False)


@router.post("/policies/preview")
async def preview(
    request: Request,
    user: AdminPage,
    register: RegisterDep,
    comment: Annotated[str, Form(max_length=2000)] = "",
    text: Annotated[str, Form(max_length=MAX_POLICY)] = "",
    file: Annotated[UploadFile | None, File()] = None,
) -> HTMLResponse:
    """What activating the uploaded or pasted policy would change, for everyone."""
    body = await uploaded_policy(text, file)
    values = {"text": body, "comment": comment}
    if not body.strip():
        errors = {"text": "paste the policy or choose its file"}
        return policies_page(request, user, register, errors=errors, values=values, status=422)
    try:
        report = preview_policy(register, body, source="uploaded policy")
    except (ValidationError, ConflictError, PolicyError) as exc:
        detail = exc.message + "".join(f" {p.location}: {p.message}." for p in exc.problems)
        return policies_page(
            request, user, register, errors={"text": detail}, values=values, status=422
        )
    data = report.to_json()
    bins = [f"{b['low']}" for b in data["histogram"]]
    histogram = line_chart(
        bins,
        {
            "before": [b["before"] for b in data["histogram"]],
            "after": [b["after"] for b in data["histogram"]],
        },
        title="Score distribution before and after",
        desc=f"Subjects per score band under {data['active']} and under {data['candidate']}.",
    )
    moved = [
        (f"{old} → {new}", n)
        for old, row in data["grade_matrix"].items()
        for new, n in row.items()
        if old != new and n
    ]
    grades = bar_chart(
        moved,
        title="Grade changes",
        desc=", ".join(f"{label}: {n}" for label, n in moved) or "No grade changes.",
    )
    return page(
        request,
        "admin/preview.html",
        {"r": data, "charts": {"histogram": histogram, "grades": grades}, "values": values},
        user=user,
        title="Impact preview",
    )
