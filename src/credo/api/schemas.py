"""Request and response bodies, in families by suffix (RecordCreate, RecordPublic...)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# The largest id both stores hold (64-bit: see store.tables.BigId): larger ids do not
# exist, and a driver refuses to bind them, so the API refuses them as input.
MAX_ID = 2**63 - 1
# A file download of any media type (attachments keep the type they were sent with).
BINARY = {"content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}}


class RecordCreate(BaseModel):
    """One official decision to file (DESIGN 4.2); the authority comes from the API key."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"additionalProperties": False})

    reference: str = Field(max_length=128, description="The authority's document number.")
    subject_id: str = Field(max_length=64)
    category: str = Field(max_length=64)
    decided_on: str = Field(json_schema_extra={"format": "date"})
    occurred_on: str | None = Field(default=None, json_schema_extra={"format": "date"})
    legal_basis: str = Field(max_length=500)
    summary: str = Field(default="", max_length=2000)
    amount: str | float | None = None
    evidence_uri: str | None = Field(default=None, max_length=2000)

    @field_validator("amount", mode="before")
    @classmethod
    def _no_booleans(cls, value: object) -> object:
        if isinstance(value, bool):
            raise ValueError("must be a number or a numeric string, not a boolean")
        return value


class StandingRef(BaseModel):
    """The subject's score and grade right after filing."""

    score: int
    grade: str


class RecordPublic(BaseModel):
    """A stored record as the filing authority sees it."""

    id: int
    authority: str
    reference: str
    subject_id: str
    category: str
    decided_on: str
    created: bool = Field(description="False when this was a retry of a stored record.")


class RowResult(BaseModel):
    """The outcome of one row of a batch."""

    line: int
    status: Literal["stored", "duplicate", "rejected"]
    reference: str | None = None
    errors: list[dict[str, str]] = Field(default_factory=list)


class BatchResult(BaseModel):
    """What a batch stored, skipped and refused, row by row."""

    stored: int
    duplicates: int
    rejected: int
    rows: list[RowResult]


class ExplanationItem(BaseModel):
    """One effective record and what it counted."""

    authority: str
    reference: str
    category: str
    points: int
    effective_until: str
    capped: bool


class StandingPublic(BaseModel):
    """A standing as a purpose sees it: absent fields are not visible to that purpose."""

    subject_id: str
    as_of: str
    policy: str
    purpose: str
    score: int | None = None
    grade: str | None = None
    lists: list[str] | None = None
    measures: list[str] | None = None
    explanation: list[ExplanationItem] | None = None


class Problem(BaseModel):
    """An RFC 9457 problem."""

    type: str
    title: str
    status: int
    detail: str | None = None
    errors: list[dict[str, str]] | None = None
