"""`credo demo`: a fresh embedded register with the example policy and synthetic people."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from importlib import resources
from pathlib import Path

from credo import synthetic
from credo.bootstrap import build_register
from credo.services.accounts import add_user
from credo.services.importing import import_records
from credo.services.keys import add_key
from credo.services.policies import activate_policy
from credo.services.sources import SourceRow
from credo.services.subjects import import_subjects
from credo.settings import Settings
from credo.synthetic import Shape

DEMO_AUTHORITIES = ("city-court", "city-personnel", "city-procurement")
# Demo logins: printed by `credo demo`, for a throwaway register only.
DEMO_USERS = (
    ("subject", "demo-subject-pass", "subject", "s-0000001", None),
    ("reviewer", "demo-reviewer-pass", "reviewer", None, None),
    ("admin", "demo-admin-pass", "admin", None, None),
    ("court", "demo-court-pass", "authority", None, "city-court"),
    ("personnel", "demo-personnel-pass", "authority", None, "city-personnel"),
)


def example_policy_text() -> str:
    """The example city policy shipped with credo."""
    return resources.files("credo").joinpath("data/example.toml").read_text(encoding="utf-8")


@dataclass
class DemoInfo:
    """Where the demo register is and how to use it."""

    home: Path
    today: date
    keys: dict[str, str] = field(default_factory=dict)
    logins: list[tuple[str, str, str]] = field(default_factory=list)
    sample_subjects: list[str] = field(default_factory=list)

    def instructions(self, port: int) -> str:
        """What to print for the person who ran `credo demo`."""
        base = f"http://127.0.0.1:{port}"
        lines = [
            f"Demo register ready in {self.home} (policy example-city, as of {self.today}).",
            "",
            "Demo API keys (shown once; only their hashes are stored):",
            *(f"  {authority:<18} {key}" for authority, key in self.keys.items()),
            "",
            f"Open the pages in a browser: {base}/ and log in as one of:",
            *(f"  {role:<10} {user:<10} {password}" for user, password, role in self.logins),
            "  (the same logins work for the API: POST /v1/auth/login)",
            "",
            f"  Pages:      {base}/",
            f"  API docs:   {base}/docs",
            f"  A standing: curl -H 'Authorization: Bearer {self.keys.get('city-personnel')}' "
            f"'{base}/v1/subjects/{self.sample_subjects[0]}/standing?purpose=promotion-review'",
            "",
            "On the command line (in another terminal):",
            f"  export CREDO_HOME={self.home}",
            f"  credo standing {' '.join(self.sample_subjects[:3])}",
            "  credo audit verify",
        ]
        return "\n".join(lines)


def build_demo(
    *,
    seed: int = 2026,
    subjects: int = 5_000,
    records: int = 40_000,
    echo: Callable[[str], object] = print,
) -> DemoInfo:
    """Create the demo register from scratch (any earlier demo register is replaced)."""
    settings = Settings()
    home = settings.home / "demo"
    if home.exists():
        shutil.rmtree(home)
    demo_settings = Settings(home=home, database_url=None, today=settings.today)
    register = build_register(demo_settings)
    today = register.clock.today()
    shape = Shape(subjects=subjects, records=records, today=today, seed=seed)
    activate_policy(register, example_policy_text(), actor="demo", comment="credo demo")
    echo(f"example policy active; generating {subjects} public servants and {records} records")
    people = [SourceRow(n, row) for n, row in enumerate(synthetic.subjects(shape), 2)]
    report = import_subjects(register, people, actor="demo", source="synthetic subjects")
    echo(f"{report.stored} subjects registered")
    policy_text = example_policy_text()
    from credo.domain.policy_load import load_policy

    policy = load_policy(policy_text)
    by_authority: dict[str, list[SourceRow]] = {}
    for authority, row in synthetic.records(policy, shape):
        rows = by_authority.setdefault(authority, [])
        rows.append(SourceRow(len(rows) + 2, dict(row)))
    stored = 0
    for authority, rows in sorted(by_authority.items()):
        stored += import_records(
            register, rows, authority_id=authority, actor="demo", source=f"synthetic {authority}"
        ).stored
    echo(f"{stored} records filed by {len(by_authority)} authorities")
    info = DemoInfo(home=home, today=today)
    for authority in DEMO_AUTHORITIES:
        info.keys[authority] = add_key(register, authority, actor="demo")
    for username, password, role, subject_id, authority_id in DEMO_USERS:
        add_user(
            register,
            username,
            password,
            role,
            subject_id=subject_id,
            authority_id=authority_id,
            actor="demo",
        )
        info.logins.append((username, password, role))
    info.sample_subjects = ["s-0000001", "s-0000011", "s-0000002"]
    register.engine.dispose()
    return info
