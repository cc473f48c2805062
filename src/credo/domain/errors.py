"""The one error family of credo; adapters map each subclass to an exit code or HTTP status."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with an input: where (a dotted location) and why."""

    location: str
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


@dataclass
class CredoError(Exception):
    """Base error: a refused input or operation, with every problem found."""

    message: str
    problems: list[Problem] = field(default_factory=list)

    def __str__(self) -> str:
        if not self.problems:
            return self.message
        lines = [self.message, *(f"  - {p}" for p in self.problems)]
        return "\n".join(lines)


class PolicyError(CredoError):
    """A policy file that does not load: every wrong key is named."""


class ValidationError(CredoError):
    """An input (record, subject, request) that breaks the contract."""


class NotFoundError(CredoError):
    """A subject, record, policy or other thing that does not exist."""


class ConflictError(CredoError):
    """A write that clashes with what is stored (e.g. a reference reused with other content)."""


class PermissionDeniedError(CredoError):
    """An actor asking for something the policy does not allow it."""


class AuthenticationError(CredoError):
    """Missing or wrong credentials."""


class NoActivePolicyError(CredoError):
    """The register has no active policy yet."""


class ThrottledError(CredoError):
    """Too many attempts in a short time (e.g. failed logins)."""
