"""Batch checks: one purpose, up to 1,000 subjects (e.g. screening bidders), one inquiry each."""

from __future__ import annotations

from datetime import date
from typing import Any

from credo.domain.errors import Problem, ValidationError
from credo.domain.scoring import compute_standing
from credo.services.inquiries import Inquiry, inquiry_log
from credo.services.register import Register
from credo.services.standing import check_purpose, shown_measures, visible_standing
from credo.store import repository
from credo.store.tables import subjects

MAX_CHECKS = 1000


def _validate(subject_ids: list[str]) -> None:
    problems = []
    if not subject_ids:
        problems.append(Problem("subject_ids", "give at least one subject id"))
    if len(subject_ids) > MAX_CHECKS:
        problems.append(
            Problem("subject_ids", f"{len(subject_ids)} ids; at most {MAX_CHECKS} per check")
        )
    seen: set[str] = set()
    for n, subject_id in enumerate(subject_ids):
        if subject_id in seen:
            problems.append(Problem(f"subject_ids[{n}]", f"{subject_id!r} is given twice"))
        seen.add(subject_id)
    if problems:
        raise ValidationError("the check was refused", problems)


def run_checks(
    register: Register,
    *,
    authority_id: str,
    purpose_id: str,
    subject_ids: list[str],
    as_of: date | None = None,
) -> list[dict[str, Any]]:
    """Each subject's standing as the purpose sees it, in the order asked.

    An unregistered id is answered `{"subject_id": ..., "error": "not registered"}` and is not
    an inquiry; every answered subject is one logged inquiry.
    """
    _validate(subject_ids)
    day = as_of or register.clock.today()
    looked: list[Inquiry] = []
    # Read first, then log every answered subject through the group commit (the audit
    # chain's lock is held only for the inserts, and concurrent checks share one commit).
    with register.read() as conn:
        _, policy = register.active_policy(conn)
        check_purpose(policy, authority_id, purpose_id)
        known = {
            row.id for row in conn.execute(subjects.select().where(subjects.c.id.in_(subject_ids)))
        }
        facts = repository.record_facts_of(conn, [s for s in subject_ids if s in known])
        answers: list[dict[str, Any]] = []
        shown = shown_measures(policy, authority_id, purpose_id)
        for subject_id in subject_ids:
            if subject_id not in known:
                answers.append({"subject_id": subject_id, "error": "not registered"})
                continue
            standing = compute_standing(policy, subject_id, facts[subject_id], day, measures=shown)
            looked.append(
                Inquiry(subject_id, authority_id, purpose_id, day, register.clock.now(), "api")
            )
            answers.append(visible_standing(policy, standing, authority_id, purpose_id))
    inquiry_log(register).log_all(register, looked)
    return answers
