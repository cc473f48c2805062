"""A seeded, deterministic synthetic register: the one `credo demo` and `bench/` use.

Frequencies are per subject over the whole span: a public servant completes training and
volunteers often, is commended now and then, and rarely meets a court, a tax office or a
discipline office. Adverse records concentrate on a minority, as they do in real files.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import TextIO

from credo.domain.policy import Policy

# Expected records per subject over six years, for the example policy's categories.
RATES: dict[str, float] = {
    "training.completed": 2.6,
    "civic.volunteering": 1.6,
    "civic.blood_donation": 0.7,
    "employment.commendation": 0.9,
    "employment.merit": 0.15,
    "admin.penalty_minor": 0.45,
    "admin.penalty_general": 0.2,
    "admin.penalty_serious": 0.05,
    "tax.arrears": 0.3,
    "tax.evasion": 0.03,
    "court.order_defiance": 0.12,
    "court.enforcement_crime": 0.01,
    "discipline.warning": 0.3,
    "discipline.demerit": 0.12,
    "discipline.major_demerit": 0.04,
    "discipline.demotion": 0.02,
    "procurement.bid_rigging": 0.02,
    "finance.fiscal_violation": 0.06,
}
SURNAMES = [
    "Wang",
    "Li",
    "Zhang",
    "Liu",
    "Chen",
    "Yang",
    "Huang",
    "Zhao",
    "Wu",
    "Zhou",
    "Xu",
    "Sun",
    "Ma",
    "Zhu",
    "Hu",
    "Guo",
    "He",
    "Lin",
    "Gao",
    "Luo",
    "Zheng",
    "Liang",
]
GIVEN = [
    "Wei",
    "Fang",
    "Min",
    "Jing",
    "Lei",
    "Yan",
    "Jun",
    "Hui",
    "Ping",
    "Qiang",
    "Li",
    "Xin",
    "Hong",
    "Bo",
    "Yu",
    "Tao",
    "Lan",
    "Ning",
    "Chao",
    "Mei",
    "Jie",
    "Dan",
    "Hao",
    "Ying",
]
BUREAUS = [
    "Tax Bureau",
    "Education Bureau",
    "Health Commission",
    "Transport Bureau",
    "Market Regulation Bureau",
    "Civil Affairs Bureau",
    "Finance Bureau",
    "Housing Bureau",
    "Water Resources Bureau",
    "Agriculture Bureau",
]
POSITIONS = [
    "Clerk",
    "Senior Clerk",
    "Section Member",
    "Deputy Section Chief",
    "Section Chief",
    "Deputy Director",
    "Director",
    "Inspector",
    "Auditor",
    "Case Officer",
]
BASIS = {
    "judicial": "Civil Procedure Law art. 262; SPC Provisions on defaulters (2017) art. 1",
    "administrative": "Administrative Penalty Law art. 9",
    "tax": "Tax Collection and Administration Law art. 63",
    "employment": "Civil Servant Law art. 61",
    "procurement": "Government Procurement Law art. 77",
    "finance": "Regulations on Penalties for Fiscal Violations art. 7",
    "training": "Regulations on the Training of Civil Servants art. 20",
    "civic": "Volunteer Service Regulations art. 32",
}
FIELDS = [
    "reference",
    "subject_id",
    "category",
    "decided_on",
    "occurred_on",
    "legal_basis",
    "summary",
    "amount",
    "evidence_uri",
]
SUBJECT_FIELDS = ["subject_id", "name", "kind", "organisation", "position", "email"]


@dataclass(frozen=True)
class Shape:
    """How big the register is and where its records fall in time."""

    subjects: int = 5_000
    organisations: int = 40
    records: int = 40_000
    years: int = 6
    today: date = date(2026, 1, 1)
    seed: int = 2026


def subject_id(n: int) -> str:
    """The opaque id of the n-th synthetic subject."""
    return f"s-{n:07d}"


def subjects(shape: Shape) -> Iterator[dict[str, str]]:
    """The synthetic public servants, in id order."""
    rng = random.Random(shape.seed)
    orgs = [
        f"District {i // len(BUREAUS) + 1} {BUREAUS[i % len(BUREAUS)]}"
        for i in range(shape.organisations)
    ]
    for n in range(1, shape.subjects + 1):
        sid = subject_id(n)
        yield {
            "subject_id": sid,
            "name": f"{rng.choice(SURNAMES)} {rng.choice(GIVEN)}{rng.choice(GIVEN).lower()}",
            "kind": "person",
            "organisation": orgs[rng.randrange(len(orgs))],
            "position": POSITIONS[min(int(rng.expovariate(0.45)), len(POSITIONS) - 1)],
            "email": f"{sid}@example.gov",
        }


def records(policy: Policy, shape: Shape) -> Iterator[tuple[str, dict[str, str]]]:
    """(authority id, record row) pairs with realistic frequencies, deterministic per seed."""
    rng = random.Random(shape.seed + 1)
    cats = [
        c for c in policy.categories if any(policy.may_file(a.id, c.id) for a in policy.authorities)
    ]
    weights = [RATES.get(c.id, 1.5 if c.points > 0 else 0.1) for c in cats]
    filers = {c.id: [a.id for a in policy.authorities if policy.may_file(a.id, c.id)] for c in cats}
    risky = max(1, shape.subjects // 10)
    span = shape.years * 365
    counters: dict[str, int] = {}
    chosen = rng.choices(range(len(cats)), weights=weights, k=shape.records)
    for index in chosen:
        category = cats[index]
        if category.points < 0 and rng.random() < 0.7:
            n = rng.randrange(risky) * 10 + 1  # every tenth subject carries most adverse files
        else:
            n = rng.randrange(shape.subjects) + 1
        n = min(n, shape.subjects)
        authority = rng.choice(filers[category.id])
        decided = shape.today - timedelta(days=rng.randrange(1, span))
        occurred = decided - timedelta(days=rng.randrange(0, 120))
        counters[authority] = counters.get(authority, 0) + 1
        reference = f"{authority.upper()[:12]}-{decided.year}-{counters[authority]:07d}"
        amount = ""
        if category.context.value in ("tax", "finance", "procurement", "administrative"):
            amount = f"{rng.randrange(500, 500_000)}.00"
        yield (
            authority,
            {
                "reference": reference,
                "subject_id": subject_id(n),
                "category": category.id,
                "decided_on": decided.isoformat(),
                "occurred_on": occurred.isoformat(),
                "legal_basis": BASIS[category.context.value],
                "summary": f"{category.name} (decision {reference})",
                "amount": amount,
                "evidence_uri": f"https://records.example.gov/{authority}/{reference}",
            },
        )


def write_subjects_csv(shape: Shape, out: TextIO) -> int:
    """Write the subjects as CSV; returns the count."""
    writer = csv.DictWriter(out, fieldnames=SUBJECT_FIELDS, lineterminator="\n")
    writer.writeheader()
    count = 0
    for row in subjects(shape):
        writer.writerow(row)
        count += 1
    return count


def write_records_csv(policy: Policy, shape: Shape, folder: Path) -> dict[str, Path]:
    """Write one records CSV per authority (each is filed with its own --authority)."""
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, TextIO] = {}
    writers: dict[str, csv.DictWriter[str]] = {}
    paths: dict[str, Path] = {}
    try:
        for authority, row in records(policy, shape):
            if authority not in writers:
                paths[authority] = folder / f"records-{authority}.csv"
                files[authority] = paths[authority].open("w", newline="", encoding="utf-8")
                writers[authority] = csv.DictWriter(
                    files[authority], fieldnames=FIELDS, lineterminator="\n"
                )
                writers[authority].writeheader()
            writers[authority].writerow(row)
    finally:
        for f in files.values():
            f.close()
    return paths
