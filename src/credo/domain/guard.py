"""The refusals of DESIGN section 2 that a policy cannot opt out of."""

from __future__ import annotations

import re
from enum import StrEnum


class Context(StrEnum):
    """The closed list of contexts a category may belong to."""

    JUDICIAL = "judicial"
    ADMINISTRATIVE = "administrative"
    TAX = "tax"
    EMPLOYMENT = "employment"
    PROCUREMENT = "procurement"
    FINANCE = "finance"
    TRAINING = "training"
    CIVIC = "civic"


MAX_VALIDITY = "P10Y"

_BELIEF = (
    "political opinion or loyalty is never scored: credo records official decisions, not beliefs"
)
_PARTY = "party activity is never scored: membership and activity in a party are protected"
_RELIGION = "religion or belief is never scored: it is a protected characteristic"
_ETHNICITY = "ethnicity is never scored: it is a protected characteristic"
_UNION = "union membership is never scored: it is a protected characteristic"
_HEALTH = "health is never scored: it is special-category personal data"
_SEX = "sex life and sexual orientation are never scored: they are special-category personal data"
_PRIVATE = "lawful private life is not an official decision: credo keeps no observations of it"
_IDEOLOGY = "ideological study is not professional training and is never scored"

# A context name (normalised) that names a protected matter, and why it is refused.
PROTECTED_CONTEXTS: dict[str, str] = {
    **dict.fromkeys(
        [
            "political",
            "politics",
            "political_opinion",
            "opinion",
            "loyalty",
            "political_loyalty",
            "patriotism",
            "allegiance",
            "political_attitude",
            "political_performance",
        ],
        _BELIEF,
    ),
    **dict.fromkeys(["party", "party_activity", "party_membership", "party_loyalty"], _PARTY),
    **dict.fromkeys(["religion", "religious", "belief", "beliefs", "faith", "worship"], _RELIGION),
    **dict.fromkeys(
        ["ethnicity", "ethnic", "ethnic_origin", "race", "racial", "nationality"], _ETHNICITY
    ),
    **dict.fromkeys(["union", "trade_union", "union_membership", "labour_union"], _UNION),
    **dict.fromkeys(
        ["health", "medical", "disability", "mental_health", "genetic", "biometric"], _HEALTH
    ),
    **dict.fromkeys(["sex", "sex_life", "sexual", "sexuality", "sexual_orientation"], _SEX),
    **dict.fromkeys(
        [
            "private",
            "private_life",
            "personal",
            "personal_life",
            "family",
            "lifestyle",
            "social",
            "social_media",
            "online",
            "behaviour",
            "behavior",
            "conduct",
            "morality",
            "moral",
            "observation",
            "surveillance",
        ],
        _PRIVATE,
    ),
    **dict.fromkeys(["ideology", "ideological", "ideological_study", "study_points"], _IDEOLOGY),
}

# Words in a category's id or name that betray a protected matter whatever context it claims.
_PROTECTED_WORDS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\b(political|politics|loyal(ty)?|disloyal(ty)?|patriot(ic|ism)?)\b"), _BELIEF),
    (
        re.compile(r"\bparty[\s_.-]*(member(ship)?|activit(y|ies)|loyalty|dues|meeting|spirit)"),
        _PARTY,
    ),
    (re.compile(r"\b(religio(n|us)|faith|worship|church|mosque|temple attendance)\b"), _RELIGION),
    (re.compile(r"\bethnic(ity)?\b"), _ETHNICITY),
    (re.compile(r"\b(trade[\s_.-]*)?union[\s_.-]*(member(ship)?|activit(y|ies))"), _UNION),
    (re.compile(r"\b(sex[\s_.-]*life|sexual[\s_.-]*orientation|sexuality)\b"), _SEX),
    (re.compile(r"\b(ideolog(y|ical)|study[\s_.-]*points|xuexi)\b"), _IDEOLOGY),
]


def normalise(text: str) -> str:
    """Lower-case with spaces, dots and dashes folded to underscores."""
    return re.sub(r"[\s.\-]+", "_", text.strip().lower())


def context_refusal(value: str) -> str | None:
    """Why a context is refused, or None when it is on the closed list."""
    key = normalise(value)
    if key in {c.value for c in Context}:
        return None
    if key in PROTECTED_CONTEXTS:
        return f"context {value!r} is refused: {PROTECTED_CONTEXTS[key]}"
    for part in key.split("_"):
        if part in PROTECTED_CONTEXTS:
            return f"context {value!r} is refused: {PROTECTED_CONTEXTS[part]}"
    allowed = ", ".join(c.value for c in Context)
    return f"context {value!r} is not on the closed list ({allowed})"


def category_refusal(category_id: str, name: str) -> str | None:
    """Why a category's id or name names a protected matter, or None."""
    text = f"{category_id} {name}".lower().replace("_", " ").replace(".", " ")
    for pattern, reason in _PROTECTED_WORDS:
        if pattern.search(text):
            return f"category {category_id!r} ({name!r}) is refused: {reason}"
    return None
