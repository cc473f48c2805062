"""Load a policy from TOML text, naming every wrong key with its table and entry id."""

from __future__ import annotations

import hashlib
import tomllib
from collections import Counter
from typing import Any

import pydantic

from credo.domain.errors import PolicyError, Problem
from credo.domain.guard import Context
from credo.domain.policy import AnyOf, GradeIn, ListTrigger, Policy


def load_policy(text: str, source: str = "policy") -> Policy:
    """Parse and check a policy; raise PolicyError listing every problem.

    >>> load_policy(open("policies/example.toml").read()).label
    'example-city@2026.1'
    """
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{source} is not valid TOML", [Problem("", str(exc))]) from exc
    try:
        policy = Policy.model_validate(raw)
    except pydantic.ValidationError as exc:
        problems = [_problem(raw, err) for err in exc.errors()]
        raise PolicyError(f"{source} does not load ({len(problems)} problems)", problems) from exc
    problems = check_references(policy)
    if problems:
        raise PolicyError(f"{source} does not load ({len(problems)} problems)", problems)
    return policy


def policy_digest(text: str) -> str:
    """SHA-256 of the policy text, to tell versions apart."""
    return hashlib.sha256(text.encode()).hexdigest()


def _problem(raw: dict[str, Any], err: Any) -> Problem:
    """Turn a pydantic error location into `table[entry-id].key`."""
    loc = list(err["loc"])
    parts: list[str] = []
    node: Any = raw
    i = 0
    while i < len(loc):
        key = loc[i]
        if isinstance(key, int) and isinstance(node, list):
            entry = node[key] if key < len(node) else None
            ident = entry.get("id") or entry.get("name") if isinstance(entry, dict) else None
            parts[-1] = f"{parts[-1]}[{ident if ident else key + 1}]" if parts else f"[{key}]"
            node = entry
        elif isinstance(key, str) and key in ("AnyOf", "GradeIn", "ListTrigger"):
            pass  # pydantic names the union member it tried; users never wrote that
        else:
            parts.append(str(key))
            node = node.get(key) if isinstance(node, dict) else None
        i += 1
    message = err["msg"].removeprefix("Value error, ")
    if message.startswith("@"):  # a model-level check naming its key: "@cap: ..."
        key, message = message[1:].split(": ", 1)
        parts.append(key)
    if err["type"] == "extra_forbidden":
        message = f"unknown key {loc[-1]!r}"
    elif err["type"] == "missing":
        message = "required key is missing"
    return Problem(".".join(parts), message)


def check_references(policy: Policy) -> list[Problem]:
    """Every cross-reference, uniqueness and ordering rule that spans tables."""
    problems: list[Problem] = []
    for table, ids in (
        ("grades", [g.name for g in policy.grades]),
        ("authorities", [a.id for a in policy.authorities]),
        ("categories", [c.id for c in policy.categories]),
        ("lists", [r.id for r in policy.lists]),
        ("measures", [m.id for m in policy.measures]),
        ("purposes", [p.id for p in policy.purposes]),
    ):
        for ident, count in Counter(ids).items():
            if count > 1:
                problems.append(Problem(f"{table}[{ident}]", f"id {ident!r} is used {count} times"))

    grades = {g.name for g in policy.grades}
    mins = [g.min for g in policy.grades]
    for prev, grade in zip(policy.grades, policy.grades[1:], strict=False):
        if grade.min >= prev.min:
            problems.append(
                Problem(
                    f"grades[{grade.name}].min",
                    "grades must be listed highest first, "
                    f"each min below the previous ({prev.name} has {prev.min})",
                )
            )
    if mins and mins[-1] > policy.policy.score_min:
        last = policy.grades[-1]
        problems.append(
            Problem(
                f"grades[{last.name}].min",
                f"the last grade's min ({last.min}) must be "
                f"score_min ({policy.policy.score_min}) so that every score has a grade",
            )
        )

    contexts = {c.value for c in Context}
    categories = set(policy.category_by_id)
    for authority in policy.authorities:
        for item in authority.may_file:
            if item not in contexts and item not in categories:
                problems.append(
                    Problem(
                        f"authorities[{authority.id}].may_file",
                        f"{item!r} is neither a context nor a category id",
                    )
                )

    lists = set(policy.list_by_id)
    for rule in policy.lists:
        for n, cond in enumerate(rule.when, 1):
            if isinstance(cond, AnyOf):
                for cat in cond.any_of:
                    if cat not in categories:
                        problems.append(
                            Problem(
                                f"lists[{rule.id}].when[{n}].any_of", f"unknown category {cat!r}"
                            )
                        )
            elif isinstance(cond, GradeIn):
                problems += _grades(grades, cond.grade_in, f"lists[{rule.id}].when[{n}].grade_in")
        for other in rule.excludes:
            if other not in lists:
                problems.append(Problem(f"lists[{rule.id}].excludes", f"unknown list {other!r}"))
            elif other == rule.id:
                problems.append(
                    Problem(f"lists[{rule.id}].excludes", "a list cannot exclude itself")
                )
    if not problems:
        try:
            _ = policy.lists_in_evaluation_order
        except ValueError:
            problems.append(
                Problem(
                    "lists",
                    "the lists' excludes form a cycle: "
                    + ", ".join(r.id for r in policy.lists if r.excludes),
                )
            )

    for measure in policy.measures:
        if measure.authority not in policy.authority_by_id:
            problems.append(
                Problem(
                    f"measures[{measure.id}].authority", f"unknown authority {measure.authority!r}"
                )
            )
        if isinstance(measure.trigger, ListTrigger):
            if measure.trigger.list not in lists:
                problems.append(
                    Problem(
                        f"measures[{measure.id}].trigger.list",
                        f"unknown list {measure.trigger.list!r}",
                    )
                )
        else:
            problems += _grades(
                grades, measure.trigger.grade_in, f"measures[{measure.id}].trigger.grade_in"
            )

    for purpose in policy.purposes:
        for authority_id in purpose.authorities:
            if authority_id not in policy.authority_by_id:
                problems.append(
                    Problem(
                        f"purposes[{purpose.id}].authorities", f"unknown authority {authority_id!r}"
                    )
                )
    return problems


def _grades(known: set[str], names: list[str], where: str) -> list[Problem]:
    return [Problem(where, f"unknown grade {name!r}") for name in names if name not in known]
