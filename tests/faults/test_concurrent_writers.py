"""Concurrent filings, objections and decisions on the same subjects (issue 6, faults).

Ten HTTP clients hit one real `credo serve` at once: authorities file records on the same
three subjects (each reference sent by every filer, as a retry would be), the subjects
object to their records (one of them from two sessions at once), two reviewers race to
decide the same open cases, and then two admins create the same accounts. Afterwards every
stored standing equals a fresh rescore by the pure scorer (no lost update), each reference
is stored once, each record has one objection, each case one decision, each account exists
once, and the audit chain verifies.
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from credo.services.accounts import add_user
from credo.services.audit_verify import verify_audit
from credo.services.keys import add_key
from credo.services.register import Register
from tests.conftest import TODAY
from tests.factories import file_rows, record, seed_register
from tests.faults.conftest import Credo, serving, standings_match_a_fresh_rescore

SUBJECTS = ("s-001", "s-002", "s-003")
FILERS = {  # authority -> a category it may file
    "city-court": "court.order_defiance",
    "city-tax": "tax.arrears",
    "city-civil": "civic.volunteering",
    "city-personnel": "employment.commendation",
}
PER_AUTHORITY = 8  # new references per authority in the burst
FILER_CLIENTS = 4  # each sends every reference: a retry race on each
PASSWORD = "correct horse battery"


@dataclass
class Outcomes:
    """What every client got back, by kind of request."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    filed: dict[str, list[tuple[int, int]]] = field(default_factory=lambda: defaultdict(list))
    objected: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))
    decided: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))
    failures: list[str] = field(default_factory=list)

    def note(self, kind: str, response: httpx.Response) -> None:
        """Count one answer; keep the body of anything that is not a plain outcome."""
        with self.lock:
            self.statuses[(kind, response.status_code)] += 1
            if response.status_code >= 500:
                self.failures.append(f"{kind}: {response.status_code} {response.text[:300]}")


def planned_filings(rng: random.Random) -> list[tuple[str, dict[str, Any]]]:
    """(authority, record) pairs for the burst, all on SUBJECTS."""
    plan = []
    for authority, category in FILERS.items():
        for n in range(PER_AUTHORITY):
            decided = TODAY - timedelta(days=rng.randrange(0, 300))
            body = record(f"{authority}-B{n:03d}", rng.choice(SUBJECTS), category, decided)
            plan.append((authority, body))
    return plan


def test_concurrent_writers_leave_every_standing_equal_to_a_fresh_rescore(
    register: Register, database_url: str, tmp_path: Path
) -> None:
    seed_register(register)
    keys = {a: add_key(register, a, actor="test") for a in FILERS}
    earlier = [
        record(f"EARLY-{n}", sid, "court.order_defiance", date(2026, 1, 1) + timedelta(days=n))
        for n, sid in enumerate(SUBJECTS * 3)
    ]
    assert file_rows(register, "city-court", earlier).stored == len(earlier)
    with register.read() as conn:
        objectable = conn.execute(
            text("SELECT id, subject_id FROM records WHERE reference LIKE 'EARLY-%' ORDER BY id")
        ).all()
    for sid in SUBJECTS:
        add_user(register, sid, PASSWORD, "subject", subject_id=sid, actor="test")
    for name in ("rev-a", "rev-b"):
        add_user(register, name, PASSWORD, "reviewer", actor="test")
    for name in ("admin-a", "admin-b"):
        add_user(register, name, PASSWORD, "admin", actor="test")

    rng = random.Random(6)
    plan = planned_filings(rng)
    outcomes = Outcomes()
    credo = Credo(tmp_path / "home", database_url)
    with serving(credo, tmp_path / "serve.log") as server:
        base = server.base_url
        start = threading.Barrier(FILER_CLIENTS + len(SUBJECTS) + 1)
        reviewers_start = threading.Barrier(2)
        burst_done = threading.Event()

        def filer(seed: int) -> None:
            order = list(plan)
            random.Random(seed).shuffle(order)
            with httpx.Client(base_url=base, timeout=60) as client:
                start.wait()
                for authority, body in order:
                    headers = {"Authorization": f"Bearer {keys[authority]}"}
                    response = client.post("/v1/records", json=body, headers=headers)
                    outcomes.note("file", response)
                    if response.status_code in (200, 201):
                        with outcomes.lock:
                            outcomes.filed[body["reference"]].append(
                                (response.status_code, response.json()["id"])
                            )

        def subject(sid: str) -> Callable[[], None]:
            def run() -> None:
                mine = [rid for rid, owner in objectable if owner == sid]
                with httpx.Client(base_url=base, timeout=60) as client:
                    login = client.post(
                        "/v1/auth/login", json={"username": sid, "password": PASSWORD}
                    )
                    assert login.status_code == 200, login.text
                    start.wait()
                    for rid in mine:
                        response = client.post(
                            "/v1/me/objections",
                            data={"record_id": str(rid), "grounds": "I complied in time"},
                        )
                        outcomes.note("object", response)
                        with outcomes.lock:
                            outcomes.objected[rid].append(response.status_code)

            return run

        def reviewer(name: str, outcome: str) -> Callable[[], None]:
            def run() -> None:
                with httpx.Client(base_url=base, timeout=60) as client:
                    login = client.post(
                        "/v1/auth/login", json={"username": name, "password": PASSWORD}
                    )
                    assert login.status_code == 200, login.text
                    reviewers_start.wait()
                    idle = 0
                    while idle < 3:
                        queue = client.get("/v1/cases", params={"status": "open"})
                        outcomes.note("queue", queue)
                        cases = queue.json() if queue.status_code == 200 else []
                        idle = idle + 1 if burst_done.is_set() and not cases else 0
                        for case in cases:
                            response = client.post(
                                f"/v1/cases/{case['id']}/decision",
                                json={"outcome": outcome, "reasons": f"decided by {name}"},
                            )
                            outcomes.note("decide", response)
                            with outcomes.lock:
                                outcomes.decided[case["id"]].append(response.status_code)

            return run

        def guarded(job: Callable[[], None]) -> Callable[[], None]:
            def run() -> None:
                try:
                    job()
                except Exception as exc:  # reported below: a client must never crash
                    with outcomes.lock:
                        outcomes.failures.append(f"{type(exc).__name__}: {exc}")
                    start.abort()
                    reviewers_start.abort()

            return run

        jobs: list[Callable[[], None]] = [(lambda s=s: filer(s)) for s in range(FILER_CLIENTS)]
        jobs += [subject(sid) for sid in SUBJECTS]
        jobs += [subject(SUBJECTS[0])]  # the same person in two sessions at once
        jobs += [reviewer("rev-a", "revoke"), reviewer("rev-b", "reject")]
        threads = [threading.Thread(target=guarded(job), daemon=True) for job in jobs]
        for thread in threads[:-2]:
            thread.start()
        for thread in threads[:-2]:
            thread.join(timeout=120)
        burst_done.set()
        # The reviewers race each other once every objection is in: a decision that came
        # before a second session's objection would rightly let that one through (an
        # objection may follow a rejected one), which is not the race under test.
        for thread in threads[-2:]:
            thread.start()
        for thread in threads[-2:]:
            thread.join(timeout=120)
        assert not any(t.is_alive() for t in threads), "a client hung"
        accounts = _two_admins_create_the_same_accounts(base)
        assert server.process.poll() is None, server.output()

    assert outcomes.failures == [], outcomes.failures[:5]
    statuses = set(outcomes.statuses)
    assert {s for _, s in statuses} <= {200, 201, 409}, outcomes.statuses

    # Each reference stored once; the two concurrent sends got one 201 and one 200, same id.
    assert set(outcomes.filed) == {body["reference"] for _, body in plan}
    for reference, answers in outcomes.filed.items():
        assert len(answers) == FILER_CLIENTS, (reference, answers)  # each filer sent each
        assert sorted(s for s, _ in answers) == [200] * (FILER_CLIENTS - 1) + [201], answers
        assert len({rid for _, rid in answers}) == 1, (reference, answers)
    with register.read() as conn:
        copies = conn.execute(
            text(
                "SELECT authority_id, reference, count(*) FROM records WHERE version = 1 "
                "GROUP BY authority_id, reference HAVING count(*) > 1"
            )
        ).all()
        assert copies == []
        stored = conn.execute(text("SELECT count(*) FROM records WHERE version = 1")).scalar()
        assert stored == len(earlier) + len(plan)
        objections = conn.execute(
            text(
                "SELECT record_id, count(*) FROM cases WHERE kind = 'objection' GROUP BY record_id"
            )
        ).all()
        decisions = conn.execute(
            text("SELECT action, payload FROM audit_entries WHERE action LIKE 'objection.%'")
        ).all()

    # At most one objection per record: one 201 among the sends, the others refused (409).
    assert {rid for rid, _ in objections} == {rid for rid, _ in objectable}
    assert {n for _, n in objections} == {1}
    for rid, answers in outcomes.objected.items():
        assert sorted(answers).count(201) == 1, (rid, answers)
        assert set(answers) <= {201, 409}, (rid, answers)

    # Each case decided once, by whichever reviewer came first; the other got a 409.
    decided_entries = Counter(
        _case_id(payload) for action, payload in decisions if action == "objection.decided"
    )
    assert set(decided_entries.values()) <= {1}, decided_entries
    assert len(decided_entries) == len(objectable)
    for case_id, answers in outcomes.decided.items():
        assert answers.count(200) == 1, (case_id, answers)

    # Two admins creating the same account at once: one 201, one 409 (a lost uniqueness
    # race is a conflict, never a 5xx), and the account exists once.
    for username, answers in accounts.items():
        assert sorted(answers) == [201, 409], (username, answers)
    with register.read() as conn:
        made = conn.execute(
            text("SELECT username, count(*) FROM users WHERE username LIKE 'race-%' GROUP BY 1")
        ).all()
    assert dict(made) == dict.fromkeys(accounts, 1)

    assert standings_match_a_fresh_rescore(register) == []
    verification = verify_audit(register)
    assert verification.ok, verification.problems[:5]


def _two_admins_create_the_same_accounts(base: str, count: int = 4) -> dict[str, list[int]]:
    """Two admin sessions send the same new accounts at the same moment; the statuses."""
    answers: dict[str, list[int]] = defaultdict(list)
    lock = threading.Lock()
    together = threading.Barrier(2)

    def admin(name: str) -> None:
        with httpx.Client(base_url=base, timeout=60) as client:
            login = client.post("/v1/auth/login", json={"username": name, "password": PASSWORD})
            assert login.status_code == 200, login.text
            for n in range(count):
                account = {"username": f"race-{n}", "password": PASSWORD, "role": "reviewer"}
                together.wait(timeout=60)
                response = client.post("/v1/users", json=account)
                with lock:
                    answers[account["username"]].append(response.status_code)

    threads = [threading.Thread(target=admin, args=(n,)) for n in ("admin-a", "admin-b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return dict(answers)


def _case_id(payload: str) -> int:
    """The case an audit entry's payload names."""
    return int(json.loads(payload)["case_id"])
