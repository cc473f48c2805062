"""API schemas of lists, measures, checks, promotion reviews and the public register."""

from __future__ import annotations

from pydantic import BaseModel, Field

from credo.api.schemas import ExplanationItem


class RecordRef(BaseModel):
    """A record named by its authority, reference and category."""

    authority: str
    reference: str
    category: str


class MembershipCause(BaseModel):
    """Why a subject entered a list: a record, or the grade."""

    record: RecordRef | None = None
    grade: str | None = None


class ListMember(BaseModel):
    """A subject on a list, since when, and (if the purpose sees explanations) why."""

    subject_id: str
    since: str | None = Field(description="Since when (from the kept periods; null if unrecorded).")
    causes: list[MembershipCause] | None = None


class ListMembersPublic(BaseModel):
    """One page of a list's members on a day."""

    list_id: str = Field(alias="list")
    as_of: str
    members: list[ListMember]
    next_after: str | None = Field(description="Pass as `after` for the next page.")


class MeasureItem(BaseModel):
    """A measure period: the measure applies from `started_on` until `ended_on` (if ended)."""

    subject_id: str
    measure: str
    started_on: str
    ended_on: str | None


class MeasuresPage(BaseModel):
    """One page of an authority's measures, and the feed cursor at the time of the read."""

    authority: str
    items: list[MeasureItem]
    next_after: str | None
    cursor: int = Field(description="Poll /v1/measures/changes?since=cursor from here.")


class MeasureEvent(BaseModel):
    """A measure started or ended for a subject on a day."""

    seq: int
    change: str = Field(description="start or end")
    subject_id: str
    measure: str
    on: str


class MeasureChanges(BaseModel):
    """Events after the cursor, in order."""

    authority: str
    events: list[MeasureEvent]
    cursor: int = Field(description="The next `since`.")
    more: bool


class CheckCreate(BaseModel):
    """A batch check: one purpose, up to 1,000 subjects."""

    purpose: str = Field(min_length=1, max_length=64)
    subject_ids: list[str] = Field(min_length=1, max_length=1000)
    as_of: str | None = Field(default=None, json_schema_extra={"format": "date"})


class CheckAnswer(BaseModel):
    """One subject's standing as the purpose sees it, or why it could not be answered."""

    subject_id: str
    error: str | None = None
    as_of: str | None = None
    policy: str | None = None
    purpose: str | None = None
    score: int | None = None
    grade: str | None = None
    lists: list[str] | None = None
    measures: list[str] | None = None
    explanation: list[ExplanationItem] | None = None


class CheckResult(BaseModel):
    """The answers, in the order asked."""

    purpose: str
    answers: list[CheckAnswer]


class CandidateIn(BaseModel):
    """A candidate: subject id and the personnel system's performance score (0 to 100)."""

    subject_id: str = Field(min_length=1, max_length=64)
    performance: float = Field(ge=0, le=100)


class PromotionReviewCreate(BaseModel):
    """A promotion slate."""

    candidates: list[CandidateIn] = Field(min_length=1, max_length=1000)
    as_of: str | None = Field(default=None, json_schema_extra={"format": "date"})


class BlockingMeasure(BaseModel):
    """A measure of the asking authority that blocks promotion."""

    measure: str
    text: str


class CandidateResult(BaseModel):
    """One assessed candidate."""

    subject_id: str
    performance: float
    integrity_score: int
    integrity: float
    combined: float
    eligible: bool
    blocked_by: list[BlockingMeasure]
    rank: int | None
    explanation: list[ExplanationItem] | None = None


class PromotionReviewResult(BaseModel):
    """The ranked slate: eligible candidates by rank, then the ineligible ones."""

    purpose: str
    as_of: str
    policy: str
    weights: dict[str, float]
    contexts: list[str]
    candidates: list[CandidateResult]


class Named(BaseModel):
    """An id and its name in the policy."""

    id: str
    name: str | None


class PublicEntry(BaseModel):
    """A published record: nothing but these fields."""

    name: str
    authority: Named
    category: Named
    decided_on: str
    legal_basis: str
    reference: str


class PublicList(BaseModel):
    """A list's published entries."""

    list_info: dict[str, str] = Field(alias="list")
    as_of: str
    entries: list[PublicEntry]
    limit: int
    offset: int


class PublicSearch(BaseModel):
    """Published entries matching a name or reference."""

    q: str
    as_of: str
    entries: list[PublicEntry]
    limit: int
    offset: int
