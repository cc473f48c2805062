"""Standings: computed from the stored records, and every look at one logged as an inquiry."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from credo.domain.errors import NotFoundError, PermissionDeniedError, Problem
from credo.domain.policy import Policy, Visible
from credo.domain.scoring import Standing, compute_standing
from credo.services.register import Register
from credo.store import audit, repository
from credo.store.tables import inquiries

ADMIN_PURPOSE = "register-administration"


@dataclass(frozen=True)
class Inquirer:
    """Who is looking and through which channel."""

    authority_id: str
    channel: str  # api | cli


def log_inquiry(
    conn: Any, register: Register, who: Inquirer, purpose: str, subject_id: str, as_of: date
) -> None:
    """Log one look at a subject: an inquiry row the subject sees, and its audit entry."""
    now = register.clock.now()
    conn.execute(
        inquiries.insert().values(
            subject_id=subject_id,
            authority_id=who.authority_id,
            purpose=purpose,
            as_of=as_of,
            at=now,
            channel=who.channel,
        )
    )
    audit.append(
        conn,
        actor=who.authority_id,
        action="inquiry.made",
        at=now,
        subject_id=subject_id,
        payload={"purpose": purpose, "as_of": as_of.isoformat(), "channel": who.channel},
    )


def standings(
    register: Register,
    subject_ids: list[str],
    *,
    as_of: date | None,
    who: Inquirer,
    purpose: str = ADMIN_PURPOSE,
) -> list[Standing]:
    """Full standings (register administration); each look is logged for the subject."""
    day = as_of or register.clock.today()
    with register.write() as conn:
        _, policy = register.active_policy(conn)
        result = []
        for subject_id in subject_ids:
            repository.subject_row(conn, subject_id)
            facts = repository.record_facts(conn, subject_id)
            result.append(compute_standing(policy, subject_id, facts, day))
            log_inquiry(conn, register, who, purpose, subject_id, day)
    return result


def check_purpose(policy: Policy, authority_id: str, purpose_id: str) -> None:
    """Refuse a purpose that does not exist or does not list the authority."""
    purpose = policy.purpose_by_id.get(purpose_id)
    if purpose is None:
        raise PermissionDeniedError(
            f"purpose {purpose_id!r} is not declared in the active policy",
            [Problem("purpose", f"unknown purpose {purpose_id!r}")],
        )
    if authority_id not in purpose.authorities:
        raise PermissionDeniedError(
            f"authority {authority_id!r} may not query for purpose {purpose_id!r}",
            [Problem("purpose", f"{purpose_id!r} is not open to {authority_id!r}")],
        )


def visible_standing(
    policy: Policy, standing: Standing, authority_id: str, purpose_id: str
) -> dict[str, Any]:
    """Only what the purpose sees, and only the asking authority's measures."""
    sees = set(policy.purpose_by_id[purpose_id].sees)
    full = standing.to_json()
    shown: dict[str, Any] = {
        "subject_id": full["subject_id"],
        "as_of": full["as_of"],
        "policy": full["policy"],
        "purpose": purpose_id,
    }
    if Visible.SCORE in sees:
        shown["score"] = full["score"]
    if Visible.GRADE in sees:
        shown["grade"] = full["grade"]
    if Visible.LISTS in sees:
        shown["lists"] = full["lists"]
    if Visible.MEASURES in sees:
        own = {m.id for m in policy.measures if m.authority == authority_id}
        shown["measures"] = [m for m in full["measures"] if m in own]
    if Visible.EXPLANATION in sees:
        shown["explanation"] = full["explanation"]
    return shown


def query_standing(
    register: Register,
    *,
    authority_id: str,
    subject_id: str,
    purpose_id: str,
    as_of: date | None = None,
) -> dict[str, Any]:
    """An authority's look at one subject for a declared purpose, logged as an inquiry."""
    day = as_of or register.clock.today()
    with register.write() as conn:
        _, policy = register.active_policy(conn)
        check_purpose(policy, authority_id, purpose_id)
        try:
            repository.subject_row(conn, subject_id)
        except NotFoundError:
            raise NotFoundError(
                f"subject {subject_id!r} is not registered",
                [Problem("subject_id", "not registered")],
            ) from None
        standing = compute_standing(
            policy, subject_id, repository.record_facts(conn, subject_id), day
        )
        log_inquiry(conn, register, Inquirer(authority_id, "api"), purpose_id, subject_id, day)
    return visible_standing(policy, standing, authority_id, purpose_id)
