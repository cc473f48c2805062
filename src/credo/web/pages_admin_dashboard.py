"""The administrators' dashboard: grades, list sizes, filings, cases and turnaround, charted."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from credo.api.deps import RegisterDep
from credo.web import admin_data
from credo.web.charts import bar_chart, line_chart, stacked_columns
from credo.web.deps import AdminPage
from credo.web.render import page, paginate

router = APIRouter(prefix="/admin", include_in_schema=False)


def active_policy(register: Any) -> Any:
    """The active policy (for pages that render it)."""
    with register.read() as conn:
        return register.active_policy(conn)[1]


@router.get("")
def dashboard(request: Request, user: AdminPage, register: RegisterDep) -> HTMLResponse:
    """Grade distribution, records per authority per month, objections and turnaround."""
    policy = active_policy(register)
    by = "filed" if request.query_params.get("by") == "filed" else "decided"
    data = admin_data.dashboard(register, [g.name for g in policy.grades], by=by)
    order = {g.name: i for i, g in enumerate(policy.grades)}
    verb = "filed" if by == "filed" else "decided"
    grades = bar_chart(
        data.grades,
        title="Grade distribution",
        desc="Subjects per grade: " + ", ".join(f"{g} {n}" for g, n in data.grades),
    )
    filed = stacked_columns(
        data.months,
        data.per_authority,
        title=f"Records per authority per month {verb}",
        desc=f"Records {verb} in each of the last {len(data.months)} months, by authority.",
    )
    lists = line_chart(
        data.months,
        data.list_sizes,
        title="List sizes over time",
        desc="Members of each list at the start of each month: "
        + "; ".join(f"{name} now {sizes[-1]:,}" for name, sizes in data.list_sizes.items()),
    )
    outcomes = bar_chart(
        [(f"{kind} {status}", n) for kind, status, n in data.case_outcomes],
        title="Objections, repairs and reviews by outcome",
        desc=", ".join(f"{k} {s}: {n}" for k, s, n in data.case_outcomes) or "No cases yet.",
    )
    turnaround = bar_chart(
        [
            *data.turnaround,
            ("open, overdue", data.open_overdue),
            ("open, in time", data.open_on_time),
        ],
        title="Decisions against their deadlines",
        desc=", ".join(f"{k}: {n}" for k, n in data.turnaround),
    )
    grade_table = paginate(
        request,
        data.grades,
        sorts={"grade": lambda r: order.get(r[0], len(order)), "subjects": lambda r: r[1]},
        default="grade",
        prefix="g_",
    )
    size_rows = [
        (month, *(sizes[i] for sizes in data.list_sizes.values()))
        for i, month in enumerate(data.months)
    ]
    list_table = paginate(
        request, size_rows, sorts={"month": lambda r: r[0]}, default="month", prefix="l_"
    )
    authority_rows = [(a, sum(v)) for a, v in data.per_authority.items()]
    authority_table = paginate(
        request,
        authority_rows,
        sorts={"authority": lambda r: r[0], "records": lambda r: r[1]},
        default="authority",
        prefix="a_",
    )
    return page(
        request,
        "admin/dashboard.html",
        {
            "data": data,
            "by": by,
            "charts": {
                "grades": grades,
                "filed": filed,
                "outcomes": outcomes,
                "turnaround": turnaround,
                "lists": lists,
            },
            "grade_table": grade_table,
            "authority_table": authority_table,
            "list_table": list_table,
        },
        user=user,
        title="Dashboard",
    )
