"""A policy activation tells every affected person what changed and which rule caused it."""

from __future__ import annotations

from sqlalchemy import select

from credo.services.notices import render
from credo.services.policies import activate_policy
from credo.services.register import Register
from credo.store.tables import notices
from tests.factories import WORKED_POLICY, file_rows, record, seed_register


def test_activation_notices_name_the_changed_rule_and_the_change(register: Register) -> None:
    seed_register(register, subjects=3)
    file_rows(
        register, "city-court", [record("EX-1", "s-001", "court.order_defiance", "2026-01-10")]
    )
    file_rows(register, "city-tax", [record("T-1", "s-002", "tax.arrears", "2026-03-01")])
    harsher = WORKED_POLICY.replace('version = "1"', 'version = "2"').replace(
        "points = -100", "points = -150"
    )
    activate_policy(register, harsher, actor="test", comment="defiance weighs more")
    with register.engine.connect() as conn:
        rows = list(
            conn.execute(
                select(notices).where(notices.c.kind == "policy.changed").order_by(notices.c.id)
            )
        )
        _, policy = register.active_policy(conn)
    # Only s-001 is affected: s-002's tax record did not change, s-003 has nothing.
    assert [r.subject_id for r in rows] == ["s-001"]
    assert rows[0].before == "900|C|dishonest|hr.no_promotion"
    assert rows[0].after == "850|D|dishonest|hr.no_promotion"
    title, body = render(rows[0], policy)
    assert title == "The register's policy changed"
    assert body.splitlines()[:4] == [
        "Your score went from 900 to 850.",
        "Your grade went from C to D.",
        "Policy worked@2 replaced worked@1.",
        "Rule changed for Defied an effective court order (court.order_defiance): "
        "points -100 -> -150.",
    ]
