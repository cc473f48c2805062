"""Helpers for the due-process API tests (imported by them; pytest does not load this file).

- `People` creates the accounts of the journey with `add_user` (the service, not HTTP) and
  gives each person their own TestClient, so every cookie jar holds exactly one session.
- `file_over_http`, `object_over_http` and `standing_of` are the few requests the journeys
  repeat; everything else is spelled out in the tests.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi.testclient import TestClient

from credo.services.accounts import add_user
from tests.api.conftest import Api

PASSWORD = "correct horse battery"  # >= 10 characters
ATTACHMENT = b"%PDF-1.4\n% receipt of compliance, 3 March 2026\n%%EOF\n"
ATTACHMENT_SHA256 = hashlib.sha256(ATTACHMENT).hexdigest()


@dataclass(frozen=True)
class Account:
    """One login of the journey."""

    username: str
    role: str
    subject_id: str | None = None
    authority_id: str | None = None


ACCOUNTS = {
    "subject": Account("wang.wei", "subject", subject_id="s-001"),
    "other_subject": Account("li.na", "subject", subject_id="s-002"),
    "reviewer": Account("zhao.reviewer", "reviewer"),
    "admin": Account("chen.admin", "admin"),
    "authority_user": Account("court.clerk", "authority", authority_id="city-court"),
}


@dataclass
class People:
    """The accounts of ACCOUNTS, created in the register, each with a logged-in client."""

    api: Api
    clients: dict[str, TestClient] = field(default_factory=dict)
    opened: list[TestClient] = field(default_factory=list)

    def __post_init__(self) -> None:
        for account in ACCOUNTS.values():
            add_user(
                self.api.register,
                account.username,
                PASSWORD,
                account.role,
                subject_id=account.subject_id,
                authority_id=account.authority_id,
                actor="test",
            )

    def new_client(self) -> TestClient:
        """A client of the same app with an empty cookie jar."""
        client = TestClient(self.api.client.app)
        self.opened.append(client)
        return client

    def login(self, who: str) -> httpx.Response:
        """Log `who` in on their own client; returns the login response."""
        client = self.clients.get(who) or self.new_client()
        self.clients[who] = client
        return client.post(
            "/v1/auth/login", json={"username": ACCOUNTS[who].username, "password": PASSWORD}
        )

    def __getitem__(self, who: str) -> TestClient:
        """The logged-in client of `who` (logging in on first use)."""
        if who not in self.clients:
            response = self.login(who)
            assert response.status_code == 200, response.text
        return self.clients[who]

    def log_in_again(self) -> None:
        """Sessions expire on the register's clock: after moving it by days, log in anew."""
        for who in list(self.clients):
            response = self.login(who)
            assert response.status_code == 200, response.text

    def close(self) -> None:
        """Close every client."""
        for client in self.opened:
            client.close()


def record_body(reference: str, category: str, decided_on: str, subject: str = "s-001") -> dict:
    """A POST /v1/records body."""
    return {
        "reference": reference,
        "subject_id": subject,
        "category": category,
        "decided_on": decided_on,
        "legal_basis": "Civil Procedure Law art. 262",
        "summary": f"{category} {reference}",
    }


def file_over_http(
    api: Api, authority: str, reference: str, category: str, decided_on: str, **kw: Any
) -> int:
    """File one record with the authority's key; returns its id."""
    response = api.client.post(
        "/v1/records",
        json=record_body(reference, category, decided_on, **kw),
        headers=api.auth(authority),
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def object_over_http(
    client: TestClient, record_id: int, grounds: str, attachment: bytes | None = ATTACHMENT
) -> httpx.Response:
    """POST /v1/me/objections as multipart, with a small PDF attachment by default."""
    files = {"attachment": ("receipt.pdf", attachment, "application/pdf")} if attachment else None
    return client.post(
        "/v1/me/objections",
        data={"record_id": str(record_id), "grounds": grounds},
        files=files,
    )


def standing_of(
    api: Api,
    as_of: str | None = None,
    *,
    authority: str = "city-personnel",
    purpose: str = "promotion-review",
    subject: str = "s-001",
) -> dict[str, Any]:
    """The standing an authority sees for a purpose (200 asserted)."""
    params = {"purpose": purpose} | ({"as_of": as_of} if as_of else {})
    response = api.client.get(
        f"/v1/subjects/{subject}/standing", params=params, headers=api.auth(authority)
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def kinds(notices: list[dict[str, Any]]) -> list[str]:
    """The kinds of a list of notices, in the order given."""
    return [n["kind"] for n in notices]
