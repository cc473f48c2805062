"""Pages for administrators: dashboards, people, API keys, policy versions and the audit check."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from credo.api.deps import RegisterDep
from credo.domain.errors import ConflictError, NotFoundError, PolicyError, ValidationError
from credo.domain.policy_load import load_policy
from credo.services.accounts import Role, add_user
from credo.services.audit_verify import verify_audit
from credo.services.keys import add_key
from credo.services.policies import activate_policy
from credo.web import admin_data
from credo.web.deps import AdminPage
from credo.web.pages_admin_dashboard import active_policy as _policy
from credo.web.render import field_errors, page, paginate
from credo.web.session import verify_csrf

router = APIRouter(prefix="/admin", dependencies=[Depends(verify_csrf)], include_in_schema=False)
Short = Annotated[str, Form(max_length=200)]
MAX_POLICY = 1024 * 1024


def _people_page(
    request: Request,
    user: Any,
    register: Any,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    created: str = "",
    status: int = 200,
) -> HTMLResponse:
    policy = _policy(register)
    table = paginate(
        request,
        admin_data.people(register),
        sorts={
            "username": lambda r: r["username"],
            "role": lambda r: (r["role"], r["username"]),
            "created_at": lambda r: r["created_at"],
        },
        default="username",
    )
    return page(
        request,
        "admin/people.html",
        {
            "table": table,
            "roles": [(r.value, r.value) for r in Role],
            "authorities": [("", "— none —")]
            + [(a.id, f"{a.name} ({a.id})") for a in policy.authorities],
            "errors": errors or {},
            "values": values or {"role": "subject"},
            "created": created or request.query_params.get("created", ""),
        },
        user=user,
        title="People",
        status=status,
    )


@router.get("/people")
def people(request: Request, user: AdminPage, register: RegisterDep) -> HTMLResponse:
    """Every account, and the form to create one."""
    return _people_page(request, user, register)


@router.post("/people")
def create_person(
    request: Request,
    user: AdminPage,
    register: RegisterDep,
    username: Short = "",
    password: Short = "",
    role: Short = "",
    subject_id: Short = "",
    authority_id: Short = "",
) -> Response:
    """Create an account (the password rules are the service's)."""
    values = {
        "username": username,
        "role": role,
        "subject_id": subject_id,
        "authority_id": authority_id,
    }
    try:
        add_user(
            register,
            username.strip(),
            password,
            role,
            subject_id=subject_id.strip() or None,
            authority_id=authority_id.strip() or None,
            actor=f"admin:{user.username}",
        )
    except (ValidationError, ConflictError) as exc:
        return _people_page(
            request, user, register, errors=field_errors(exc), values=values, status=422
        )
    except NotFoundError as exc:
        errors = {"subject_id": exc.message}
        return _people_page(request, user, register, errors=errors, values=values, status=422)
    return RedirectResponse(f"/admin/people?created={username.strip()}", status_code=303)


def _keys_page(
    request: Request,
    user: Any,
    register: Any,
    *,
    new_key: str = "",
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    policy = _policy(register)
    table = paginate(
        request,
        admin_data.keys(register),
        sorts={
            "authority": lambda r: (r["authority_id"], r["created_at"]),
            "created_at": lambda r: r["created_at"],
            "revoked_at": lambda r: r["revoked_at"],
        },
        default="authority",
    )
    return page(
        request,
        "admin/keys.html",
        {
            "table": table,
            "authorities": [(a.id, f"{a.name} ({a.id})") for a in policy.authorities],
            "new_key": new_key,
            "errors": errors or {},
            "revoked": request.query_params.get("revoked", ""),
        },
        user=user,
        title="API keys",
        status=status,
    )


@router.get("/keys")
def keys(request: Request, user: AdminPage, register: RegisterDep) -> HTMLResponse:
    """Every authority's keys by prefix; create or revoke one."""
    return _keys_page(request, user, register)


@router.post("/keys")
def create_key(
    request: Request, user: AdminPage, register: RegisterDep, authority_id: Short = ""
) -> HTMLResponse:
    """Create a key; it is shown on this one response only."""
    try:
        key = add_key(register, authority_id, actor=f"admin:{user.username}")
    except ValidationError as exc:
        return _keys_page(request, user, register, errors={"authority_id": exc.message}, status=422)
    return _keys_page(request, user, register, new_key=key)


@router.post("/keys/{key_id}/revoke")
def revoke(key_id: int, user: AdminPage, register: RegisterDep) -> Response:
    """Revoke a key from now on."""
    prefix = admin_data.revoke_key(register, key_id, actor=f"admin:{user.username}")
    return RedirectResponse(f"/admin/keys?revoked={prefix}", status_code=303)


@router.get("/policies")
def policies(request: Request, user: AdminPage, register: RegisterDep) -> HTMLResponse:
    """Every stored policy version, and the form to activate a new one."""
    return policies_page(request, user, register)


def policies_page(
    request: Request,
    user: Any,
    register: Any,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    """The versions table and the form to preview or activate a new policy file."""
    table = paginate(
        request,
        admin_data.policy_versions_list(register),
        sorts={
            "activated_at": lambda r: r["activated_at"],
            "policy": lambda r: (r["policy_id"], r["version"]),
        },
        default="activated_at",
        direction="desc",
    )
    return page(
        request,
        "admin/policies.html",
        {"table": table, "errors": errors or {}, "values": values or {}},
        user=user,
        title="Policies",
        status=status,
    )


@router.get("/policies/{version_id}")
def policy_page(
    version_id: int, request: Request, user: AdminPage, register: RegisterDep
) -> HTMLResponse:
    """One policy version, rendered readably, with its activation form."""
    return _policy_page(request, user, register, version_id)


def _policy_page(
    request: Request,
    user: Any,
    register: Any,
    version_id: int,
    *,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    version = admin_data.policy_version(register, version_id)
    policy = load_policy(version["text"], "stored policy")
    categories = paginate(
        request,
        policy.categories,
        sorts={
            "id": lambda c: c.id,
            "context": lambda c: (c.context.value, c.id),
            "points": lambda c: c.points,
        },
        default="context",
        per_page=50,
    )
    return page(
        request,
        "admin/policy.html",
        {
            "version": version,
            "policy": policy,
            "categories": categories,
            "errors": errors or {},
            "activated": request.query_params.get("activated") == "1",
        },
        user=user,
        title=f"Policy {policy.label}",
        status=status,
    )


@router.post("/policies/{version_id}/activate")
def activate_stored(
    version_id: int,
    request: Request,
    user: AdminPage,
    register: RegisterDep,
    comment: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Make a stored version the active one again (a comment saying why is required)."""
    version = admin_data.policy_version(register, version_id)
    try:
        activate_policy(register, version["text"], actor=f"admin:{user.username}", comment=comment)
    except (ValidationError, ConflictError, PolicyError) as exc:
        return _policy_page(
            request, user, register, version_id, errors=field_errors(exc), status=422
        )
    return RedirectResponse(f"/admin/policies/{version_id}?activated=1", status_code=303)


async def uploaded_policy(text: str, file: UploadFile | None) -> str:
    """The policy text of the form: the chosen file's, else the pasted text."""
    if file is not None and file.filename:
        return (await file.read(MAX_POLICY + 1)).decode("utf-8", errors="replace")
    return text


@router.post("/policies")
async def activate_new(
    request: Request,
    user: AdminPage,
    register: RegisterDep,
    comment: Annotated[str, Form(max_length=2000)] = "",
    text: Annotated[str, Form(max_length=MAX_POLICY)] = "",
    file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    """Check and activate a new policy file (uploaded or pasted), rescoring everyone."""
    body = await uploaded_policy(text, file)
    values = {"text": text, "comment": comment}
    if not body.strip():
        return policies_page(
            request,
            user,
            register,
            errors={"text": "paste the policy or choose its file"},
            values=values,
            status=422,
        )
    try:
        done = activate_policy(register, body, actor=f"admin:{user.username}", comment=comment)
    except (ValidationError, ConflictError, PolicyError) as exc:
        errors = field_errors(exc)
        if "comment" not in errors:
            errors = {
                "text": exc.message + "".join(f" {p.location}: {p.message}." for p in exc.problems)
            }
        return policies_page(request, user, register, errors=errors, values=values, status=422)
    return RedirectResponse(f"/admin/policies/{done.version_id}?activated=1", status_code=303)


@router.get("/audit")
def audit(request: Request, user: AdminPage, register: RegisterDep) -> HTMLResponse:
    """`credo audit verify`: the hash chain and every stored row checked now."""
    result = verify_audit(register)
    table = paginate(
        request,
        [(i + 1, p) for i, p in enumerate(result.problems)],
        sorts={"n": lambda r: r[0]},
        default="n",
    )
    return page(
        request, "admin/audit.html", {"result": result, "table": table}, user=user, title="Audit"
    )
