"""Department pages, part two: upload a file of records, and a promotion review from a slate.

An upload runs the same import as `POST /v1/records/batch` (`import_records`: every row
validated, good rows stored once, re-runs idempotent) and shows every row's outcome. The
rejected rows come back as a CSV the browser downloads: the page carries them in a hidden
field of a small form, so the server keeps no copy of a department's refused rows.

A promotion review reads the slate with the command line's parser (`read_slate`: columns
`subject_id` and `performance`, errors by line) and ranks it with `review_slate`; each
candidate is one inquiry. The ranked table is the answer to that one POST: paging it
through links would look at every candidate again, so it is shown whole (at most 1,000
rows, the service's limit) and can be downloaded as CSV the same way.
"""

from __future__ import annotations

import csv
import io
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response

from credo.api.deps import RegisterDep
from credo.cli.promotion import COLUMNS, _cells, read_slate
from credo.domain.errors import (
    ConflictError,
    PermissionDeniedError,
    Problem,
    ValidationError,
)
from credo.domain.filing import RECORD_FIELDS
from credo.services.accounts import User
from credo.services.importing import Reject, import_records
from credo.services.promotion import PURPOSE, review_slate
from credo.services.register import Register
from credo.services.sources import read_rows
from credo.web.deps import AuthorityPage
from credo.web.pages_department import authority_of
from credo.web.render import page
from credo.web.session import verify_csrf

router = APIRouter(
    prefix="/department", dependencies=[Depends(verify_csrf)], include_in_schema=False
)
MAX_UPLOAD = 1024 * 1024  # larger files: POST /v1/records/batch or `credo import`
MAX_CSV_FIELD = 900 * 1024  # a form field's limit is 1 MB
SHOWN_ROWS = 1000
Upload = Annotated[UploadFile | None, File()]


def _format(upload: UploadFile, declared: str) -> str | None:
    """'csv' or 'jsonl' from the chosen format or the file's name."""
    if declared in ("csv", "jsonl"):
        return declared
    name = (upload.filename or "").lower()
    if name.endswith(".csv"):
        return "csv"
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    return None


async def _read(upload: UploadFile | None, field: str) -> tuple[str, bytes]:
    """The uploaded file's name and bytes, or a refusal tied to the file field."""
    if upload is None or not upload.filename:
        raise ValidationError("no file", [Problem(field, "choose a file to upload")])
    content = await upload.read(MAX_UPLOAD + 1)
    if len(content) > MAX_UPLOAD:
        raise ValidationError(
            "the file is too large",
            [Problem(field, "the page takes files up to 1 MB; send larger ones to the API")],
        )
    return upload.filename, content


def _csv(header: list[str], rows: list[list[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def _bounded(text: str) -> tuple[str, bool]:
    """The CSV text if it fits in a form field, else its first lines that fit."""
    if len(text.encode()) <= MAX_CSV_FIELD:
        return text, False
    kept, size = [], 0
    for line in text.splitlines(keepends=True):
        size += len(line.encode())
        if size > MAX_CSV_FIELD:
            break
        kept.append(line)
    return "".join(kept), True


def _import_page(
    request: Request,
    user: User,
    *,
    errors: dict[str, str] | None = None,
    report: dict[str, Any] | None = None,
    status: int = 200,
) -> HTMLResponse:
    return page(
        request,
        "department/import.html",
        {"errors": errors or {}, "report": report, "shown_rows": SHOWN_ROWS},
        user=user,
        title="Upload records",
        status=status,
    )


@router.get("/imports")
def import_form(request: Request, user: AuthorityPage) -> HTMLResponse:
    """The upload form: a CSV or JSON Lines file of records."""
    return _import_page(request, user)


@router.post("/imports")
async def import_submit(
    request: Request,
    user: AuthorityPage,
    register: RegisterDep,
    file: Upload = None,
    format: Annotated[str, Form(max_length=8)] = "",
) -> HTMLResponse:
    """Import the file; every row's outcome, and the rejects as a CSV to download."""
    authority_id, _ = authority_of(user, register)
    try:
        name, content = await _read(file, "file")
        assert file is not None
        fmt = _format(file, format)
        if fmt is None:
            raise ValidationError(
                "unknown format",
                [Problem("file", "name the file .csv or .jsonl, or choose the format")],
            )
    except ValidationError as exc:
        errors = {p.location: p.message for p in exc.problems}
        return _import_page(request, user, errors=errors, status=422)
    results: list[dict[str, Any]] = []
    rejects: list[Reject] = []

    def reject(r: Reject) -> None:
        rejects.append(r)
        results.append({"line": r.line, "status": "rejected", "reference": "", "reason": r.reason})

    def accept(line: int, status: str, reference: str) -> None:
        results.append({"line": line, "status": status, "reference": reference, "reason": ""})

    def run() -> Any:
        return import_records(
            register,
            read_rows(io.BytesIO(content), fmt, RECORD_FIELDS),
            authority_id=authority_id,
            actor=f"web:{user.username}",
            source=f"web upload {name}",
            on_reject=reject,
            on_accept=accept,
        )

    try:
        summary = await run_in_threadpool(run)
    except ValidationError as exc:  # an unreadable file (e.g. a CSV header it cannot use)
        detail = "; ".join(str(p) for p in exc.problems)
        message = f"{exc.message}: {detail}" if detail else exc.message
        return _import_page(request, user, errors={"file": message}, status=422)
    results.sort(key=lambda r: r["line"])
    rejects.sort(key=lambda r: r.line)
    rejects_csv, cut = _bounded(
        _csv(["line", "reason", "row"], [[r.line, r.reason, r.raw] for r in rejects])
    )
    report = {
        "name": name,
        "stored": summary.stored,
        "duplicates": summary.duplicates,
        "rejected": summary.rejected,
        "rows": results[:SHOWN_ROWS],
        "total": len(results),
        "rejects_csv": rejects_csv if rejects else "",
        "rejects_cut": cut,
        "download_name": f"{name.rsplit('.', 1)[0]}.rejects.csv",
    }
    return _import_page(request, user, report=report)


def _download(text: str, filename: str) -> Response:
    safe = "".join(ch for ch in filename if ch.isalnum() or ch in "-_.") or "download.csv"
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{safe}"'},
    )


@router.post("/imports/rejects.csv")
def rejects_download(
    user: AuthorityPage,
    csv_text: Annotated[str, Form(max_length=MAX_CSV_FIELD)] = "",
    filename: Annotated[str, Form(max_length=200)] = "rejects.csv",
) -> Response:
    """The rejected rows of the upload just shown, as a CSV file (line, reason, row)."""
    return _download(csv_text, filename)


def _promotion_page(
    request: Request,
    user: User,
    register: Register,
    *,
    errors: dict[str, str] | None = None,
    problems: list[Problem] | None = None,
    result: dict[str, Any] | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    authority_id, policy = authority_of(user, register)
    purpose = policy.purpose_by_id.get(PURPOSE)
    allowed = purpose is not None and authority_id in purpose.authorities
    context: dict[str, Any] = {
        "allowed": allowed,
        "purpose": purpose,
        "promotion": policy.promotion,
        "errors": errors or {},
        "problems": problems or [],
        "result": result,
        "values": values or {},
        "measures": {m.id: m for m in policy.measures},
    }
    if result is not None:
        rows = result["candidates"]
        context["result_csv"] = _csv(COLUMNS, [_cells(r) for r in rows])
    return page(
        request,
        "department/promotion.html",
        context,
        user=user,
        title="Promotion review",
        status=status,
    )


@router.get("/promotion")
def promotion_form(request: Request, user: AuthorityPage, register: RegisterDep) -> HTMLResponse:
    """The slate form: a CSV file or pasted text with subject_id and performance."""
    return _promotion_page(request, user, register)


@router.post("/promotion")
async def promotion_submit(
    request: Request,
    user: AuthorityPage,
    register: RegisterDep,
    slate: Upload = None,
    slate_text: Annotated[str, Form(max_length=200_000)] = "",
) -> HTMLResponse:
    """Rank the slate: eligible candidates by combined score, the others with their measure."""
    authority_id, _ = authority_of(user, register)
    values = {"slate_text": slate_text}
    try:
        if slate is not None and slate.filename:
            name, content = await _read(slate, "slate")
            try:
                text = content.decode("utf-8-sig")
            except UnicodeDecodeError:
                raise ValidationError(
                    "not UTF-8", [Problem("slate", "the file is not UTF-8 text")]
                ) from None
        elif slate_text.strip():
            name, text = "the pasted slate", slate_text
        else:
            raise ValidationError(
                "no slate", [Problem("slate", "choose a CSV file or paste the slate")]
            )
        candidates = read_slate(text, name)
        result = await run_in_threadpool(
            lambda: review_slate(register, candidates, authority_id=authority_id, channel="web")
        )
    except (ValidationError, ConflictError, PermissionDeniedError) as exc:
        problems = list(exc.problems) or [Problem("slate", exc.message)]
        slate_problem = next((p.message for p in problems if p.location == "slate"), None)
        message = slate_problem or f"{exc.message}: see the {len(problems)} problem(s) above"
        return _promotion_page(
            request,
            user,
            register,
            errors={"slate": message},
            problems=[p for p in problems if p.location != "slate"],
            values=values,
            status=422,
        )
    return _promotion_page(request, user, register, result=result, values=values)


@router.post("/promotion/result.csv")
def promotion_download(
    user: AuthorityPage,
    csv_text: Annotated[str, Form(max_length=MAX_CSV_FIELD)] = "",
) -> Response:
    """The ranked table just shown, as a CSV file."""
    return _download(csv_text, "promotion-review.csv")
