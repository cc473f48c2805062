"""Validation of a filed record (DESIGN 4.2): one row in, a NewRecord or its problems out.

This runs once per imported row, so the common case (every field a clean string) takes a
straight path; anything unusual falls back to `_slow_text`, which names the problem.
"""

from __future__ import annotations

import hashlib
import re
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, NamedTuple

from credo.domain.errors import Problem
from credo.domain.policy import Policy

RECORD_FIELDS = (
    "reference",
    "subject_id",
    "category",
    "decided_on",
    "occurred_on",
    "legal_basis",
    "summary",
    "amount",
    "evidence_uri",
)
_FIELD_SET = frozenset(RECORD_FIELDS)
REQUIRED = ("reference", "subject_id", "category", "decided_on", "legal_basis")
MAX_LENGTH = {
    "reference": 128,
    "subject_id": 64,
    "category": 64,
    "decided_on": 40,
    "occurred_on": 40,
    "legal_basis": 500,
    "summary": 2000,
    "amount": 40,
    "evidence_uri": 2000,
}
_LIMITS = tuple(MAX_LENGTH[key] for key in RECORD_FIELDS)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_LINE_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_URI = re.compile(r"^(https?|urn|doc|file|s3|ftp)://?\S+$", re.IGNORECASE)
_HUGE = Decimal("1e16")
_CENT = Decimal("0.01")


class NewRecord(NamedTuple):
    """A record that passed validation, ready to store."""

    authority_id: str
    reference: str
    subject_id: str
    category: str
    decided_on: date
    occurred_on: date | None
    legal_basis: str
    summary: str
    amount: Decimal | None
    evidence_uri: str | None

    def content_hash(self) -> str:
        """SHA-256 of the filed facts; the audit log and idempotence rely on it."""
        return record_hash(
            self.authority_id,
            self.reference,
            1,
            self.subject_id,
            self.category,
            self.decided_on,
            self.occurred_on,
            self.legal_basis,
            self.summary,
            self.amount,
            self.evidence_uri,
        )


def record_hash(
    authority_id: str,
    reference: str,
    version: int,
    subject_id: str,
    category: str,
    decided_on: date | str,
    occurred_on: date | str | None,
    legal_basis: str,
    summary: str,
    amount: Decimal | str | None,
    evidence_uri: str | None,
) -> str:
    """The row hash of a stored record version (recomputed by `credo audit verify`)."""
    amount_text = "" if amount is None else format(Decimal(amount).quantize(_CENT), "f")
    text = "\x1f".join(
        (
            authority_id,
            reference,
            str(version),
            subject_id,
            category,
            str(decided_on),
            "" if occurred_on is None else str(occurred_on),
            legal_basis,
            summary,
            amount_text,
            evidence_uri or "",
        )
    )
    return hashlib.sha256(text.encode()).hexdigest()


def _slow_text(key: str, value: Any, problems: list[Problem]) -> str | None:
    """The careful path for one field: types, lengths and control characters, named."""
    if value is None:
        return None
    if type(value) is not str:
        if isinstance(value, int | float) and not isinstance(value, bool) and key == "amount":
            return str(value)
        problems.append(Problem(key, f"must be a string, not {type(value).__name__}"))
        return None
    text: str = value.strip()
    if not text:
        return None
    limit = MAX_LENGTH[key]
    if len(text) > limit:
        problems.append(Problem(key, f"is {len(text)} characters long; the limit is {limit}"))
        return None
    pattern = _CONTROL if key == "summary" else _LINE_CONTROL
    if pattern.search(text):
        problems.append(Problem(key, "contains control characters"))
        return None
    return text


@lru_cache(maxsize=1 << 15)
def _iso_day(value: str) -> date | None:
    """A YYYY-MM-DD text as a date, or None (cached: files repeat their dates)."""
    if not _DATE.match(value):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def _date(value: str | None, key: str, problems: list[Problem]) -> date | None:
    if value is None:
        return None
    day = _iso_day(value)
    if day is not None:
        return day
    if not _DATE.match(value):
        problems.append(Problem(key, f"{value[:40]!r} is not a date (YYYY-MM-DD)"))
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        problems.append(Problem(key, f"{value!r} is not a calendar date"))
        return None


def validate_record(
    row: dict[str, Any], *, authority_id: str, policy: Policy, today: date
) -> NewRecord | list[Problem]:
    """Check one row against the contract and the policy (the store checks the subject).

    >>> validate_record({"reference": "R1", ...}, authority_id="city-court", policy=p,
    ...                 today=date(2026, 3, 1))  # doctest: +SKIP
    """
    problems: list[Problem] = []
    if not _FIELD_SET.issuperset(row):
        for key in row:
            if key not in _FIELD_SET:
                reason = (
                    "the authority comes from the credentials, never from the record"
                    if key == "authority"
                    else "unknown field"
                )
                problems.append(Problem(str(key), reason))
    get = row.get
    values: list[str | None] = []
    for key, limit in zip(RECORD_FIELDS, _LIMITS, strict=True):
        value = get(key)
        if type(value) is str:
            value = value.strip()
            if not value:
                value = None
            elif len(value) > limit or not value.isprintable():
                value = _slow_text(key, value, problems)
        elif value is not None:
            value = _slow_text(key, value, problems)
        values.append(value)
    reference, subject_id, category, decided_text, occurred_text, legal_basis = values[:6]
    summary, amount_text, uri = values[6:]
    for key, value in (
        ("reference", reference),
        ("subject_id", subject_id),
        ("category", category),
        ("decided_on", decided_text),
        ("legal_basis", legal_basis),
    ):
        if value is None and not any(p.location == key for p in problems):
            problems.append(Problem(key, "is required and must not be empty"))
    decided = _date(decided_text, "decided_on", problems)
    occurred = _date(occurred_text, "occurred_on", problems)
    if decided is not None:
        if decided > today:
            problems.append(Problem("decided_on", f"{decided} is in the future (today is {today})"))
        if occurred is not None and occurred > decided:
            problems.append(Problem("occurred_on", f"{occurred} is after decided_on {decided}"))
    if category is not None and category not in policy.filable_by(authority_id):
        if category not in policy.category_by_id:
            problems.append(Problem("category", f"unknown category {category!r}"))
        else:
            problems.append(
                Problem("category", f"authority {authority_id!r} may not file {category!r}")
            )
    amount: Decimal | None = None
    if amount_text is not None:
        try:
            amount = Decimal(amount_text)
            if not amount.is_finite() or abs(amount) >= _HUGE:
                raise InvalidOperation
        except InvalidOperation:
            problems.append(Problem("amount", f"{amount_text[:40]!r} is not a number"))
    if uri is not None and not _URI.match(uri):
        problems.append(Problem("evidence_uri", "must be an http(s), urn or document URI"))
    if problems:
        return problems
    assert reference and subject_id and category and decided and legal_basis
    return NewRecord(
        authority_id,
        reference,
        subject_id,
        category,
        decided,
        occurred,
        legal_basis,
        summary or "",
        amount,
        uri,
    )


def validate_plain(
    values: tuple[str, ...], *, authority_id: str, filable: frozenset[str], today: date
) -> NewRecord | None:
    """`validate_record` for the common row of a CSV file, or None when it needs the careful
    path (which then names its problems).

    `values` are the row's fields in `RECORD_FIELDS` order, as text ('' for an empty or
    absent column); `filable` is the categories the authority may file. A row taken here
    gives exactly the record `validate_record` gives; any doubt sends it there instead.
    """
    reference, subject_id, category, decided_text, occurred_text = values[:5]
    legal_basis, summary, amount_text, uri = values[5:]
    # One pass over all fields: printable text (no control character), and no space beside
    # a separator or at either end, so that no field needs stripping. A field that holds
    # the separator next to a space only costs the careful path.
    joined = "|".join(values)
    if (
        not joined.isprintable()
        or " |" in joined
        or "| " in joined
        or joined[0] == " "
        or joined[-1] == " "
    ):
        return None
    if not (reference and subject_id and category and decided_text and legal_basis):
        return None
    if (
        len(reference) > 128
        or len(subject_id) > 64
        or len(category) > 64
        or len(decided_text) > 40
        or len(occurred_text) > 40
        or len(legal_basis) > 500
        or len(summary) > 2000
        or len(amount_text) > 40
        or len(uri) > 2000
        or category not in filable
    ):
        return None
    decided = _iso_day(decided_text)
    if decided is None or decided > today:
        return None
    occurred = None
    if occurred_text:
        occurred = _iso_day(occurred_text)
        if occurred is None or occurred > decided:
            return None
    amount = None
    if amount_text:
        try:
            amount = Decimal(amount_text)
        except InvalidOperation:
            return None
        if not amount.is_finite() or abs(amount) >= _HUGE:
            return None
    if uri and not _URI.match(uri):
        return None
    return NewRecord(
        authority_id,
        reference,
        subject_id,
        category,
        decided,
        occurred,
        legal_basis,
        summary,
        amount,
        uri or None,
    )
