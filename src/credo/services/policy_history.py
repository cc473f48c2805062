"""The policy versions the register has activated: list them, show one, diff two."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from credo.domain.errors import NotFoundError, Problem, ValidationError
from credo.domain.policy import Policy
from credo.domain.policy_diff import PolicyDiff, diff_policies
from credo.domain.policy_load import load_policy
from credo.services.register import Register
from credo.store.tables import audit_entries, policy_versions


@dataclass(frozen=True)
class PolicyVersion:
    """One stored policy version and its (latest) activation."""

    id: int
    policy_id: str
    version: str
    active: bool
    activated_at: datetime
    activated_by: str
    comment: str
    text: str

    @property
    def label(self) -> str:
        """`policy_id@version`."""
        return f"{self.policy_id}@{self.version}"

    def to_json(self) -> dict[str, Any]:
        """The version without its text, for `credo policy list --json`."""
        return {
            "id": self.id,
            "policy": self.label,
            "active": self.active,
            "activated_at": self.activated_at.isoformat(),
            "activated_by": self.activated_by,
            "comment": self.comment,
        }


def _version(row: Any) -> PolicyVersion:
    at = row.activated_at
    if isinstance(at, str):  # SQLite hands back text
        at = datetime.fromisoformat(at)
    return PolicyVersion(
        id=int(row.id),
        policy_id=row.policy_id,
        version=row.version,
        active=bool(row.active),
        activated_at=at,
        activated_by=row.activated_by,
        comment=row.comment or "",
        text=row.text,
    )


def list_versions(register: Register) -> list[PolicyVersion]:
    """Every stored version, oldest first; exactly one is active once any is."""
    with register.read() as conn:
        rows = conn.execute(select(policy_versions).order_by(policy_versions.c.id)).all()
    return [_version(r) for r in rows]


@dataclass(frozen=True)
class Activation:
    """One activation, as the audit chain recorded it (re-activations included)."""

    at: str
    actor: str
    policy: str
    version_id: int
    previous: str | None
    comment: str
    rescored: int

    def to_json(self) -> dict[str, Any]:
        """For `credo policy history --json`."""
        return {
            "at": self.at,
            "by": self.actor,
            "policy": self.policy,
            "version_id": self.version_id,
            "previous": self.previous,
            "comment": self.comment,
            "rescored": self.rescored,
        }


def activations(register: Register) -> list[Activation]:
    """Every activation in order, from the `policy.activated` audit entries."""
    a = audit_entries.c
    with register.read() as conn:
        rows = conn.execute(
            select(a.at, a.actor, a.payload).where(a.action == "policy.activated").order_by(a.seq)
        ).all()
    found = []
    for row in rows:
        payload = json.loads(row.payload)
        at = row.at if isinstance(row.at, str) else row.at.isoformat()
        found.append(
            Activation(
                at=at,
                actor=row.actor,
                policy=payload["policy"],
                version_id=int(payload["version_id"]),
                previous=payload.get("previous"),
                comment=payload.get("comment", ""),
                rescored=int(payload.get("rescored", 0)),
            )
        )
    return found


def find_version(register: Register, ref: str) -> PolicyVersion:
    """A stored version by number (`3`, `#3`) or by label (`example-city@2026.1`).

    >>> find_version(register, "example-city@2026.1").id
    1
    """
    key = ref.strip().removeprefix("#")
    query = select(policy_versions)
    if key.isdigit():
        query = query.where(policy_versions.c.id == int(key))
    elif "@" in key:
        policy_id, _, version = key.partition("@")
        query = query.where(
            policy_versions.c.policy_id == policy_id, policy_versions.c.version == version
        )
    else:
        raise ValidationError(
            f"{ref!r} names no policy version",
            [Problem("version", "use a version number (see `credo policy list`) or ID@VERSION")],
        )
    with register.read() as conn:
        row = conn.execute(query).first()
    if row is None:
        raise NotFoundError(f"no stored policy version {ref!r} (see `credo policy list`)")
    return _version(row)


@dataclass(frozen=True)
class PolicySide:
    """One side of a diff: where the policy came from and the policy itself."""

    source: str
    policy: Policy


def resolve(register: Register, ref: str) -> PolicySide:
    """A policy file path (an existing file wins) or a stored version, loaded and checked."""
    path = Path(ref)
    if path.is_file():
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValidationError(f"cannot read {ref}: {exc.strerror}") from None
        return PolicySide(f"file {ref}", load_policy(text, ref))
    if not ref.strip().removeprefix("#").isdigit() and "@" not in ref:
        raise NotFoundError(f"{ref!r} is neither a file nor a stored policy version")
    stored = find_version(register, ref)
    return PolicySide(f"version #{stored.id}", load_policy(stored.text, stored.label))


def diff_versions(
    register: Register, old: str, new: str
) -> tuple[PolicySide, PolicySide, PolicyDiff]:
    """Compare two policies, each a stored version or a file."""
    before, after = resolve(register, old), resolve(register, new)
    return before, after, diff_policies(before.policy, after.policy)
