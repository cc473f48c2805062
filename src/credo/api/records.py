"""POST /v1/records and /v1/records/batch: authorities file official records."""

from __future__ import annotations

import io
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from fastapi.concurrency import run_in_threadpool

from credo.api.deps import AuthorityDep, RegisterDep
from credo.api.schemas import BatchResult, Problem, RecordCreate, RecordPublic, RowResult
from credo.domain.errors import ValidationError
from credo.domain.filing import RECORD_FIELDS
from credo.services.filing import file_record
from credo.services.importing import Reject, import_records
from credo.services.sources import read_rows

router = APIRouter(prefix="/v1/records", tags=["records"])
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "content": {"application/problem+json": {}}}
    for code in (400, 401, 403, 404, 409, 422, 429, 503)
}
MAX_BATCH_BYTES = 20 * 1024 * 1024


@router.post("", status_code=201, response_model=RecordPublic, responses=ERRORS)
def create_record(
    body: RecordCreate, register: RegisterDep, authority: AuthorityDep, response: Response
) -> RecordPublic:
    """File one record. A retry with the same reference and content returns 200 and the record.

    ```
    curl -X POST -H "Authorization: Bearer $KEY" -H "Content-Type: application/json" \\
      -d '{"reference": "2026-EX-17", "subject_id": "s-0000001",
           "category": "court.order_defiance", "decided_on": "2026-01-10",
           "legal_basis": "Civil Procedure Law art. 262", "summary": "Defied order"}' \\
      http://127.0.0.1:8000/v1/records
    ```
    """
    fields = body.model_dump(exclude_unset=True)
    if isinstance(fields.get("amount"), float | int):
        fields["amount"] = str(fields["amount"])
    filed = file_record(register, fields, authority_id=authority, actor=f"api:{authority}")
    if not filed.created:
        response.status_code = 200
    return RecordPublic(
        id=filed.record_id,
        authority=authority,
        reference=body.reference,
        subject_id=body.subject_id,
        category=body.category,
        decided_on=body.decided_on,
        created=filed.created,
    )


_FORMATS = {
    "text/csv": "csv",
    "application/x-ndjson": "jsonl",
    "application/jsonl": "jsonl",
    "application/x-jsonlines": "jsonl",
    "application/json-lines": "jsonl",
}


@router.post(
    "/batch",
    response_model=BatchResult,
    responses=ERRORS,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/x-ndjson": {"schema": {"type": "string"}},
            },
        }
    },
)
async def create_batch(
    request: Request,
    register: RegisterDep,
    authority: AuthorityDep,
    content_type: Annotated[str, Header()] = "",
) -> BatchResult:
    """File many records from a CSV or JSON Lines body; every row gets its own result.

    ```
    curl -X POST -H "Authorization: Bearer $KEY" -H "Content-Type: text/csv" \\
      --data-binary @records.csv http://127.0.0.1:8000/v1/records/batch
    ```
    """
    fmt = _FORMATS.get(content_type.split(";", 1)[0].strip().lower())
    if fmt is None:
        raise ValidationError(
            "send the batch as text/csv or application/x-ndjson",
            [_problem("content-type", f"unsupported: {content_type!r}")],
        )
    body = await request.body()
    if len(body) > MAX_BATCH_BYTES:
        raise ValidationError(
            f"a batch body is limited to {MAX_BATCH_BYTES} bytes; "
            "use `credo import` for larger files"
        )
    results: list[RowResult] = []

    def reject(r: Reject) -> None:
        results.append(
            RowResult(
                line=r.line,
                status="rejected",
                errors=[{"field": p.location, "message": p.message} for p in r.problems],
            )
        )

    def accept(line: int, status: str, reference: str) -> None:
        results.append(RowResult(line=line, status=status, reference=reference))

    def run() -> Any:
        rows = read_rows(io.BytesIO(body), fmt, RECORD_FIELDS)
        return import_records(
            register,
            rows,
            authority_id=authority,
            actor=f"api:{authority}",
            source="api batch",
            on_reject=reject,
            on_accept=accept,
        )

    report = await run_in_threadpool(run)
    results.sort(key=lambda r: r.line)
    return BatchResult(
        stored=report.stored, duplicates=report.duplicates, rejected=report.rejected, rows=results
    )


def _problem(location: str, message: str) -> Any:
    from credo.domain.errors import Problem as P

    return P(location, message)
