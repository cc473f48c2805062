"""Validation of a subject row (`credo subjects import`)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from credo.domain.errors import Problem

SUBJECT_FIELDS = ("subject_id", "name", "kind", "organisation", "position", "email")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
_EMAIL = re.compile(r"^[^@\s,;<>()\[\]\\\"]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")
_LIMITS = {"name": 200, "organisation": 200, "position": 200, "email": 254}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class SubjectKind(StrEnum):
    """Who is on file."""

    PERSON = "person"
    ORGANISATION = "organisation"


@dataclass(frozen=True, slots=True)
class NewSubject:
    """A subject row that passed validation."""

    subject_id: str
    name: str
    kind: SubjectKind
    organisation: str | None
    position: str | None
    email: str | None

    def content_hash(self) -> str:
        """SHA-256 of the registered details."""
        return subject_hash(
            self.subject_id, self.name, self.kind, self.organisation, self.position, self.email
        )


def subject_hash(
    subject_id: str,
    name: str,
    kind: str,
    organisation: str | None,
    position: str | None,
    email: str | None,
) -> str:
    """The row hash of a stored subject (recomputed by `credo audit verify`)."""
    parts = [subject_id, name, str(kind), organisation or "", position or "", email or ""]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def validate_subject(row: dict[str, Any]) -> NewSubject | list[Problem]:
    """Check one subject row."""
    problems: list[Problem] = []
    for key in row:
        if key not in SUBJECT_FIELDS:
            problems.append(Problem(str(key), "unknown field"))
    values: dict[str, str | None] = {}
    for key in SUBJECT_FIELDS:
        value = row.get(key)
        if value is not None and not isinstance(value, str):
            problems.append(Problem(key, f"must be a string, not {type(value).__name__}"))
            value = None
        value = value.strip() if value else None
        if value and key in _LIMITS and len(value) > _LIMITS[key]:
            problems.append(
                Problem(key, f"is {len(value)} characters long; the limit is {_LIMITS[key]}")
            )
            value = None
        if value and _CONTROL.search(value):
            problems.append(Problem(key, "contains control characters"))
            value = None
        values[key] = value or None
    subject_id = values["subject_id"]
    if subject_id is None:
        problems.append(Problem("subject_id", "is required and must not be empty"))
    elif not _ID.match(subject_id):
        problems.append(
            Problem(
                "subject_id",
                f"{subject_id[:70]!r} is not an opaque id "
                "(1-64 letters, digits, '.', '_', ':' or '-')",
            )
        )
    if values["name"] is None and not any(p.location == "name" for p in problems):
        problems.append(Problem("name", "is required and must not be empty"))
    kind = (values["kind"] or SubjectKind.PERSON.value).lower()
    kind = {"organization": "organisation", "org": "organisation"}.get(kind, kind)
    if kind not in {k.value for k in SubjectKind}:
        problems.append(Problem("kind", f"{kind!r} is neither 'person' nor 'organisation'"))
    email = values["email"]
    if email is not None and not _EMAIL.match(email):
        problems.append(Problem("email", f"{email!r} is not an e-mail address"))
    if problems:
        return problems
    assert subject_id is not None and values["name"] is not None
    return NewSubject(
        subject_id=subject_id,
        name=values["name"],
        kind=SubjectKind(kind),
        organisation=values["organisation"],
        position=values["position"],
        email=email,
    )
