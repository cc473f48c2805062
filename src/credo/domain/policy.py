"""The policy file (DESIGN 4.1) as typed, validated models."""

from __future__ import annotations

import re
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
    model_validator,
)

from credo.domain.durations import Duration
from credo.domain.guard import MAX_VALIDITY, Context, category_refusal, context_refusal

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")


def _duration(value: Any) -> Duration:
    if isinstance(value, Duration):
        return value
    if not isinstance(value, str):
        raise ValueError("must be an ISO-8601 duration string such as 'P2Y'")
    return Duration.parse(value)


DurationField = Annotated[
    Duration, BeforeValidator(_duration), PlainSerializer(str, return_type=str)
]


def _context(value: Any) -> Context:
    if not isinstance(value, str):
        raise ValueError("must be a context name")
    refusal = context_refusal(value)
    if refusal:
        raise ValueError(refusal)
    return Context(value.strip().lower())


ContextField = Annotated[Context, BeforeValidator(_context)]


def _identifier(value: Any) -> str:
    if not isinstance(value, str) or not _ID.match(value):
        raise ValueError(f"{value!r} is not an id: use 1-64 letters, digits, '.', '_', ':' or '-'")
    return value


Identifier = Annotated[str, BeforeValidator(_identifier)]


class Strict(BaseModel):
    """Base for policy tables: unknown keys are refused, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class ListKind(StrEnum):
    """Red lists reward, black lists sanction."""

    RED = "red"
    BLACK = "black"


class MeasureKind(StrEnum):
    """A measure is a reward or a sanction."""

    REWARD = "reward"
    SANCTION = "sanction"


class Visible(StrEnum):
    """The parts of a standing that a purpose may see."""

    SCORE = "score"
    GRADE = "grade"
    LISTS = "lists"
    MEASURES = "measures"
    EXPLANATION = "explanation"


class PolicyHeader(Strict):
    """The [policy] table."""

    id: Identifier
    version: Annotated[str, Field(min_length=1, max_length=64)]
    base_score: int
    score_min: int = 0
    score_max: int
    objection_period: DurationField = Duration(months=0, days=30)
    publication_delay: DurationField = Duration(months=0, days=15)
    name: str | None = None
    description: str | None = None

    @model_validator(mode="after")
    def _bounds(self) -> PolicyHeader:
        if self.score_min >= self.score_max:
            raise ValueError("@score_min: score_min must be below score_max")
        if not self.score_min <= self.base_score <= self.score_max:
            raise ValueError("@base_score: base_score must lie between score_min and score_max")
        if self.objection_period.is_zero():
            raise ValueError("@objection_period: objection_period must be longer than zero days")
        return self


class Grade(Strict):
    """One grade band: scores at or above `min` (and below the previous band)."""

    name: Identifier
    min: int


class Authority(Strict):
    """A department: which contexts or categories it may file."""

    id: Identifier
    name: Annotated[str, Field(min_length=1)]
    may_file: list[str] = Field(default_factory=list)


class Category(Strict):
    """A kind of record: its context, points, validity and cap."""

    id: Identifier
    name: Annotated[str, Field(min_length=1)]
    context: ContextField
    points: int
    valid_for: DurationField
    cap: int | None = None
    publish_for: DurationField | None = None
    repairable: bool = False
    suspend_while_disputed: bool = True
    description: str | None = None

    @field_validator("valid_for")
    @classmethod
    def _validity(cls, value: Duration) -> Duration:
        if value.is_zero():
            raise ValueError(f"valid_for {value} must be longer than zero days")
        if value.exceeds(Duration.parse(MAX_VALIDITY)):
            raise ValueError(f"valid_for {value} exceeds the 10-year maximum: no lifelong scores")
        return value

    @field_validator("publish_for")
    @classmethod
    def _publication(cls, value: Duration | None) -> Duration | None:
        if value is not None and value.is_zero():
            raise ValueError("publish_for must be longer than zero days (omit it to never publish)")
        return value

    @field_validator("points")
    @classmethod
    def _points(cls, value: int) -> int:
        if value == 0:
            raise ValueError("points must not be zero")
        return value

    @model_validator(mode="after")
    def _rules(self) -> Category:
        refusal = category_refusal(self.id, self.name)
        if refusal:
            raise ValueError(f"@name: {refusal}")
        if self.cap is not None and (self.cap == 0 or (self.cap > 0) != (self.points > 0)):
            raise ValueError(
                f"@cap: cap {self.cap} must be non-zero and have the same sign as points "
                f"{self.points}"
            )
        return self


class AnyOf(Strict):
    """List condition: an effective record in one of these categories."""

    any_of: list[str] = Field(min_length=1)


class GradeIn(Strict):
    """List or trigger condition: the grade is one of these."""

    grade_in: list[str] = Field(min_length=1)


class ListRule(Strict):
    """A red or black list with its entry conditions (any one suffices)."""

    id: Identifier
    kind: ListKind
    name: Annotated[str, Field(min_length=1)]
    when: list[AnyOf | GradeIn] = Field(min_length=1)
    excludes: list[str] = Field(default_factory=list)
    description: str | None = None


class ListTrigger(Strict):
    """Measure trigger: membership of a list."""

    list: str


class Measure(Strict):
    """A reward or sanction one authority applies, judged on its contexts only."""

    id: Identifier
    authority: str
    kind: MeasureKind
    trigger: ListTrigger | GradeIn
    contexts: list[ContextField] = Field(min_length=1)
    blocks: str | None = None
    text: Annotated[str, Field(min_length=1)]


class Purpose(Strict):
    """A declared reason to query: who may use it and what they see."""

    id: Identifier
    authorities: list[str] = Field(min_length=1)
    sees: list[Visible] = Field(min_length=1)
    legal_basis: Annotated[str, Field(min_length=1)]
    description: str | None = None


class Promotion(Strict):
    """How a promotion review weighs performance against integrity."""

    weights: dict[Literal["performance", "integrity"], float]
    contexts: list[ContextField] = Field(min_length=1)

    @field_validator("weights")
    @classmethod
    def _weights(cls, value: dict[str, float]) -> dict[str, float]:
        if set(value) != {"performance", "integrity"}:
            raise ValueError("weights must give both 'performance' and 'integrity'")
        if any(w < 0 for w in value.values()) or sum(value.values()) <= 0:
            raise ValueError("weights must be non-negative and not all zero")
        return value


class Policy(Strict):
    """A whole policy file; cross-references are checked by `credo.domain.policy_load`."""

    policy: PolicyHeader
    grades: list[Grade] = Field(min_length=1)
    authorities: list[Authority] = Field(default_factory=list)
    categories: list[Category] = Field(min_length=1)
    lists: list[ListRule] = Field(default_factory=list)
    measures: list[Measure] = Field(default_factory=list)
    purposes: list[Purpose] = Field(default_factory=list)
    promotion: Promotion | None = None

    @property
    def label(self) -> str:
        """`id@version`, as standings name their policy."""
        return f"{self.policy.id}@{self.policy.version}"

    @cached_property
    def category_by_id(self) -> dict[str, Category]:
        """Categories by id."""
        return {c.id: c for c in self.categories}

    @cached_property
    def authority_by_id(self) -> dict[str, Authority]:
        """Authorities by id."""
        return {a.id: a for a in self.authorities}

    @cached_property
    def purpose_by_id(self) -> dict[str, Purpose]:
        """Purposes by id."""
        return {p.id: p for p in self.purposes}

    @cached_property
    def list_by_id(self) -> dict[str, ListRule]:
        """Lists by id."""
        return {rule.id: rule for rule in self.lists}

    @cached_property
    def lists_in_evaluation_order(self) -> list[ListRule]:
        """Lists ordered so that every excluded list is decided before the lists excluding it."""
        done: dict[str, ListRule] = {}
        pending = list(self.lists)
        while pending:
            ready = [r for r in pending if all(e in done for e in r.excludes)]
            if not ready:  # cycles are refused at load; this is a guard
                raise ValueError("lists exclude each other in a cycle")
            for rule in ready:
                done[rule.id] = rule
            pending = [r for r in pending if r.id not in done]
        return list(done.values())

    @cached_property
    def _filable(self) -> dict[str, frozenset[str]]:
        return {
            a.id: frozenset(
                c.id for c in self.categories if c.id in a.may_file or c.context in a.may_file
            )
            for a in self.authorities
        }

    def filable_by(self, authority_id: str) -> frozenset[str]:
        """The category ids an authority may file (empty for an unknown authority)."""
        return self._filable.get(authority_id, frozenset())

    def may_file(self, authority_id: str, category_id: str) -> bool:
        """Whether the authority may file records of this category."""
        authority = self.authority_by_id.get(authority_id)
        category = self.category_by_id.get(category_id)
        if authority is None or category is None:
            return False
        return category_id in authority.may_file or category.context.value in authority.may_file
