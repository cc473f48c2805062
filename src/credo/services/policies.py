"""Checking and activating policies: exactly one version is active, activation is audited."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, text, update

from credo.domain.errors import ConflictError, Problem, ValidationError
from credo.domain.policy import Policy
from credo.domain.policy_diff import diff_policies
from credo.domain.policy_load import load_policy, policy_digest
from credo.services.policy_notices import activation_notices
from credo.services.register import Register
from credo.store import audit
from credo.store.dates import add_duration_sql
from credo.store.rescore import lock_register, rescore_all
from credo.store.tables import policy_versions


@dataclass(frozen=True)
class Activation:
    """What activating a policy did."""

    version_id: int
    label: str
    rescored: int
    changed_categories: list[str]
    already_active: bool


def check_policy(text_: str, source: str = "policy") -> Policy:
    """Load and check a policy file; raises PolicyError naming every wrong key."""
    return load_policy(text_, source)


def summary_lines(policy: Policy) -> list[str]:
    """A short human summary of a loaded policy."""
    contexts = sorted({c.context.value for c in policy.categories})
    return [
        f"policy {policy.label}: OK",
        f"  {len(policy.categories)} categories in {len(contexts)} contexts "
        f"({', '.join(contexts)})",
        f"  {len(policy.grades)} grades: "
        + ", ".join(f"{g.name} >= {g.min}" for g in policy.grades),
        f"  {len(policy.lists)} lists: " + ", ".join(f"{r.id} ({r.kind})" for r in policy.lists),
        f"  {len(policy.measures)} measures by {len({m.authority for m in policy.measures})} "
        f"authorities; {len(policy.authorities)} authorities; {len(policy.purposes)} purposes",
    ]


def activate_policy(
    register: Register, text_: str, *, actor: str, comment: str, source: str = "policy"
) -> Activation:
    """Store a policy version, make it the only active one, and rescore everyone.

    All in one transaction: readers see the old policy and standings or the new ones.
    `comment` (why this version is activated) is required and kept with the version.
    """
    comment = comment.strip()
    if not comment:
        raise ValidationError(
            "activating a policy needs a comment saying why",
            [Problem("comment", "must not be empty")],
        )
    policy = load_policy(text_, source)
    digest = policy_digest(text_)
    now = register.clock.now()
    with register.write() as conn:
        lock_register(conn, exclusive=True)
        existing = conn.execute(
            select(policy_versions).where(
                policy_versions.c.policy_id == policy.policy.id,
                policy_versions.c.version == policy.policy.version,
            )
        ).first()
        if existing is not None and existing.digest != digest:
            raise ConflictError(
                f"policy {policy.label} is already stored with different text: "
                "give the changed policy a new version"
            )
        previous = conn.execute(select(policy_versions).where(policy_versions.c.active)).first()
        if previous is not None and existing is not None and previous.id == existing.id:
            return Activation(existing.id, policy.label, 0, [], already_active=True)
        old = load_policy(previous.text, "stored policy") if previous is not None else None
        conn.execute(update(policy_versions).where(policy_versions.c.active).values(active=False))
        if existing is not None:
            version_id = int(existing.id)
            conn.execute(
                update(policy_versions)
                .where(policy_versions.c.id == version_id)
                .values(active=True, activated_at=now, activated_by=actor, comment=comment)
            )
        else:
            inserted = conn.execute(
                policy_versions.insert().values(
                    policy_id=policy.policy.id,
                    version=policy.policy.version,
                    text=text_,
                    digest=digest,
                    activated_at=now,
                    activated_by=actor,
                    comment=comment,
                    active=True,
                )
            )
            key = inserted.inserted_primary_key
            assert key is not None
            version_id = int(key[0])
        changed = [
            c.id
            for c in policy.categories
            if old is None
            or c.id not in old.category_by_id
            or old.category_by_id[c.id].valid_for != c.valid_for
        ]
        dialect = conn.dialect.name
        for category_id in changed:
            end = add_duration_sql(
                dialect, "decided_on", policy.category_by_id[category_id].valid_for
            )
            conn.execute(
                text(
                    "UPDATE records SET ends_on = CASE WHEN repaired_on IS NOT NULL AND "
                    f"repaired_on < {end} THEN repaired_on ELSE {end} END WHERE category = :c"
                ),
                {"c": category_id},
            )
        if old is None or old.policy.objection_period != policy.policy.objection_period:
            due = add_duration_sql(dialect, "filed_on", policy.policy.objection_period)
            conn.execute(text(f"UPDATE cases SET due_on = {due}"))
        today = register.clock.today()
        diff = diff_policies(old, policy) if old is not None else None
        rescored = rescore_all(
            conn,
            policy,
            version_id,
            today,
            now,
            notify=activation_notices(policy, old, diff, today, now),
        )
        audit.append(
            conn,
            actor=actor,
            action="policy.activated",
            at=now,
            digest=digest,
            payload={
                "policy": policy.label,
                "version_id": version_id,
                "previous": old.label if old else None,
                "comment": comment,
                "rescored": rescored,
                "ends_recomputed": changed,
            },
        )
        register._policies.pop(version_id, None)
    return Activation(version_id, policy.label, rescored, changed, already_active=False)
