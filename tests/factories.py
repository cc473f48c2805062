"""Small factories for tests: policies, subjects, records and in-memory rows."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import Any

from sqlalchemy import text

from credo.demo import example_policy_text
from credo.services.importing import ImportReport, import_records
from credo.services.policies import activate_policy
from credo.services.register import Register
from credo.services.sources import SourceRow
from credo.services.standing import query_standing_async
from credo.services.subjects import import_subjects
from credo.store.db import is_sqlite
from credo.store.hotpath import close_async

WORKED_POLICY = """
[policy]
id = "worked"
version = "1"
base_score = 1000
score_min = 0
score_max = 2000
objection_period = "P30D"
publication_delay = "P15D"

[[grades]]
name = "A"
min = 1050
[[grades]]
name = "B"
min = 1000
[[grades]]
name = "C"
min = 900
[[grades]]
name = "D"
min = 0

[[authorities]]
id = "city-court"
name = "City Court"
may_file = ["judicial"]
[[authorities]]
id = "city-tax"
name = "City Tax Bureau"
may_file = ["tax"]
[[authorities]]
id = "city-civil"
name = "Civil Affairs"
may_file = ["civic.volunteering"]
[[authorities]]
id = "city-personnel"
name = "Personnel Bureau"
may_file = ["employment"]

[[categories]]
id = "court.order_defiance"
name = "Defied an effective court order"
context = "judicial"
points = -100
valid_for = "P2Y"
cap = -200
publish_for = "P2Y"
repairable = true
[[categories]]
id = "tax.arrears"
name = "Tax arrears"
context = "tax"
points = -60
valid_for = "P1Y"
[[categories]]
id = "civic.volunteering"
name = "Volunteering"
context = "civic"
points = 20
valid_for = "P1Y"
cap = 60
[[categories]]
id = "employment.commendation"
name = "Commendation"
context = "employment"
points = 40
valid_for = "P1M"

[[lists]]
id = "dishonest"
kind = "black"
name = "Dishonest persons subject to enforcement"
when = [ { any_of = ["court.order_defiance"] }, { grade_in = ["D"] } ]

[[lists]]
id = "exemplary"
kind = "red"
name = "Exemplary public servants"
when = [ { grade_in = ["A"] } ]
excludes = ["dishonest"]

[[measures]]
id = "hr.no_promotion"
authority = "city-personnel"
kind = "sanction"
trigger = { list = "dishonest" }
contexts = ["judicial", "employment"]
blocks = "promotion"
text = "Not eligible for promotion while listed"

[[measures]]
id = "tax.strict"
authority = "city-tax"
kind = "sanction"
trigger = { grade_in = ["C", "D"] }
contexts = ["tax"]
text = "Strict tax supervision"

[[purposes]]
id = "promotion-review"
authorities = ["city-personnel"]
sees = ["grade", "lists", "measures", "explanation"]
legal_basis = "Civil Servant Law art. 45"

[[purposes]]
id = "tax-check"
authorities = ["city-tax", "city-court"]
sees = ["score", "grade", "measures"]
legal_basis = "Tax Collection Law art. 1"
"""


def example_policy() -> str:
    """The example city policy text."""
    return example_policy_text()


def rows(items: Iterable[dict[str, Any]], first_line: int = 2) -> list[SourceRow]:
    """In-memory source rows with line numbers."""
    return [SourceRow(n, dict(item)) for n, item in enumerate(items, first_line)]


def subject(n: int, **extra: Any) -> dict[str, Any]:
    """A subject row."""
    return {
        "subject_id": f"s-{n:03d}",
        "name": f"Person {n}",
        "organisation": "Tax Bureau",
        "position": "Clerk",
        **extra,
    }


def record(
    reference: str, subject_id: str, category: str, decided_on: date | str, **extra: Any
) -> dict[str, Any]:
    """A record row."""
    return {
        "reference": reference,
        "subject_id": subject_id,
        "category": category,
        "decided_on": str(decided_on),
        "legal_basis": "Test Law art. 1",
        "summary": f"{category} {reference}",
        **extra,
    }


def seed_register(register: Register, subjects: int = 3, policy: str = WORKED_POLICY) -> None:
    """Activate a policy and register `subjects` people (s-001...)."""
    activate_policy(register, policy, actor="test", comment="seed")
    import_subjects(
        register, rows(subject(n) for n in range(1, subjects + 1)), actor="test", source="seed"
    )


def file_rows(register: Register, authority: str, items: Iterable[dict[str, Any]]) -> ImportReport:
    """Import record rows for one authority."""
    return import_records(
        register, rows(items), authority_id=authority, actor="test", source="test"
    )


def dates_policy(durations: dict[str, str], version: str = "1") -> str:
    """A small policy whose categories `d.<name>` have the given validities."""
    categories = "".join(
        f'\n[[categories]]\nid = "d.{name}"\nname = "Dated {name}"\ncontext = "employment"\n'
        f'points = -10\nvalid_for = "{valid_for}"\n'
        for name, valid_for in durations.items()
    )
    return f"""
[policy]
id = "dates"
version = "{version}"
base_score = 1000
score_min = 0
score_max = 2000

[[grades]]
name = "A"
min = 1000
[[grades]]
name = "B"
min = 0

[[authorities]]
id = "hr"
name = "Personnel"
may_file = ["employment"]
{categories}"""


def wipe(register: Register, tables: Sequence[str]) -> None:
    """Empty these tables behind the application's back (a property test's fresh start),
    and the filing keys of a register partitioned by subject (`record_refs`) with them."""
    with register.write() as conn:
        for table in tables:
            conn.execute(text(f"DELETE FROM {table}"))
        partitioned = (
            not is_sqlite(conn)
            and conn.execute(text("SELECT to_regclass('record_refs') IS NOT NULL")).scalar()
        )
        if "records" in tables and partitioned:
            conn.execute(text("DELETE FROM record_refs"))


def standings_on_one_loop(
    register: Register, asks: Sequence[tuple[str, str]], purpose: str = "promotion-review"
) -> list[Any]:
    """Ask for every (API key, subject) at once on one event loop, as the API's PostgreSQL
    hot path does under load: the answers, or the errors raised, in the order asked."""

    async def run() -> list[Any]:
        try:
            return await asyncio.gather(
                *(
                    query_standing_async(register, api_key=key, subject_id=sid, purpose_id=purpose)
                    for key, sid in asks
                ),
                return_exceptions=True,
            )
        finally:
            # As the app's shutdown does: the loop's pool closes before the loop ends, instead
            # of having its tasks cancelled by asyncio.run (which could hang on them).
            await close_async(register.engine)

    # On a thread of its own: an earlier test (the browser's) may leave a loop running here.
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(lambda: asyncio.run(run())).result()
