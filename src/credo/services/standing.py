"""Standings: computed from the stored records, and every look at one logged as an inquiry."""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass
from datetime import date
from typing import Any

import psycopg
from sqlalchemy import Engine

from credo.domain.errors import (
    NoActivePolicyError,
    NotFoundError,
    PermissionDeniedError,
    Problem,
)
from credo.domain.policy import Measure, Policy, Visible
from credo.domain.scoring import Standing, compute_standing
from credo.services.inquiries import (
    Inquirer,
    Inquiry,
    async_inquiry_log,
    inquiry_log,
    log_inquiries,
)
from credo.services.keys import key_authority, key_prefix
from credo.services.register import Register
from credo.store import repository
from credo.store.db import is_sqlite
from credo.store.hotpath import LoopBatcher, PerLoop, async_connection, driver_connection

ADMIN_PURPOSE = "register-administration"


def standings(
    register: Register,
    subject_ids: list[str],
    *,
    as_of: date | None,
    who: Inquirer,
    purpose: str = ADMIN_PURPOSE,
) -> list[Standing]:
    """Full standings (register administration); each look is logged for the subject."""
    day = as_of or register.clock.today()
    with register.write() as conn:
        _, policy = register.active_policy(conn)
        result = []
        for subject_id in subject_ids:
            repository.subject_row(conn, subject_id)
            facts = repository.record_facts(conn, subject_id)
            result.append(compute_standing(policy, subject_id, facts, day))
        log_inquiries(conn, register, who, purpose, subject_ids, day)
    return result


def check_purpose(policy: Policy, authority_id: str, purpose_id: str) -> None:
    """Refuse a purpose that does not exist or does not list the authority."""
    purpose = policy.purpose_by_id.get(purpose_id)
    if purpose is None:
        raise PermissionDeniedError(
            f"purpose {purpose_id!r} is not declared in the active policy",
            [Problem("purpose", f"unknown purpose {purpose_id!r}")],
        )
    if authority_id not in purpose.authorities:
        raise PermissionDeniedError(
            f"authority {authority_id!r} may not query for purpose {purpose_id!r}",
            [Problem("purpose", f"{purpose_id!r} is not open to {authority_id!r}")],
        )


def shown_measures(policy: Policy, authority_id: str, purpose_id: str) -> list[Measure]:
    """The measures an answer for this purpose shows the asking authority: its own, when the
    purpose sees measures at all (`visible_standing`), in the policy's order."""
    if Visible.MEASURES not in policy.purpose_by_id[purpose_id].sees:
        return []
    return [m for m in policy.measures if m.authority == authority_id]


def visible_standing(
    policy: Policy, standing: Standing, authority_id: str, purpose_id: str
) -> dict[str, Any]:
    """Only what the purpose sees, and only the asking authority's measures."""
    sees = set(policy.purpose_by_id[purpose_id].sees)
    full = standing.to_json()
    shown: dict[str, Any] = {
        "subject_id": full["subject_id"],
        "as_of": full["as_of"],
        "policy": full["policy"],
        "purpose": purpose_id,
    }
    if Visible.SCORE in sees:
        shown["score"] = full["score"]
    if Visible.GRADE in sees:
        shown["grade"] = full["grade"]
    if Visible.LISTS in sees:
        shown["lists"] = full["lists"]
    if Visible.MEASURES in sees:
        own = {m.id for m in policy.measures if m.authority == authority_id}
        shown["measures"] = [m for m in full["measures"] if m in own]
    if Visible.EXPLANATION in sees:
        shown["explanation"] = full["explanation"]
    return shown


_LOOKUP = (
    "WITH caller AS {materialized}("
    "SELECT (SELECT id FROM policy_versions WHERE active) AS policy_id, "
    "(SELECT 1 FROM subjects WHERE id = {mark}) AS known, "
    "k.authority_id, k.key_hash, k.revoked_at "
    "FROM (SELECT 1 AS one) AS one LEFT JOIN api_keys k ON k.prefix = {mark}) "
    "SELECT caller.*, " + repository.FACTS_COLUMNS + " FROM caller "
    "LEFT JOIN (" + repository.FACTS_JOIN + ") ON r.subject_id = {mark} ORDER BY r.id"
)
# On PostgreSQL the caller's row is computed once (MATERIALIZED): inlined, its subject check
# ran again for every record row. SQLite before 3.35 does not know the word.
_LOOKUP_SQLITE = _LOOKUP.format(mark="?", materialized="")
_LOOKUP_PG = _LOOKUP.format(mark="%s", materialized="MATERIALIZED ")
_FACTS_FROM = 5  # the lookup's columns before the record facts


def query_standing(
    register: Register,
    *,
    subject_id: str,
    purpose_id: str,
    as_of: date | None = None,
    authority_id: str | None = None,
    api_key: str | None = None,
) -> dict[str, Any]:
    """An authority's look at one subject for a declared purpose, logged as an inquiry.

    The asker is `authority_id`, or the holder of `api_key`, which is then checked here (a
    revoked key is refused at once). Checks come in the order the API promises: the key
    (401), the purpose (403), the subject (404). The standing is answered only after its
    inquiry and audit entry are committed (through the group commit of `InquiryLog`).

    The hot path: one statement through the driver (credo.store.hotpath) reads the key, the
    active policy's id, whether the subject exists and the subject's records; then the pure
    scorer, then the shared commit. The records are read before the key is judged, but
    nothing of them leaves this module unless every check passes.
    """
    ask = _Ask(subject_id, purpose_id, as_of, authority_id, api_key)
    sql = _LOOKUP_SQLITE if is_sqlite(register.engine) else _LOOKUP_PG
    with driver_connection(register.engine) as conn:
        rows = conn.execute(sql, ask.params()).fetchall()
    shown, inquiry = _answer(register, _policy(register, rows[0][0]), rows, ask)
    inquiry_log(register).log(register, inquiry)
    return shown


async def query_standing_async(
    register: Register,
    *,
    subject_id: str,
    purpose_id: str,
    as_of: date | None = None,
    authority_id: str | None = None,
    api_key: str | None = None,
) -> dict[str, Any]:
    """`query_standing` on the event loop, PostgreSQL only: the same lookup, shared with
    the lookups in flight beside it (`AsyncLookups`), the same checks, and the loop's own
    group commit (`AsyncInquiryLog`): no thread between the request and its answer."""
    ask = _Ask(subject_id, purpose_id, as_of, authority_id, api_key)
    rows = await async_lookups(register.engine).rows(ask.params())
    version_id = rows[0][0]
    policy = _cached_policy(register, version_id)
    if policy is None and version_id is not None:  # a new version: read it off the loop
        policy = await asyncio.to_thread(_policy, register, version_id)
    shown, inquiry = _answer(register, policy, rows, ask)
    await async_inquiry_log(register.engine).log(inquiry)
    return shown


# Several lookups in one statement: the asks as arrays, numbered, each joined to its own
# key row, subject and records exactly as in _LOOKUP; the rows come back numbered.
_LOOKUP_MANY = (
    "WITH ask AS (SELECT * FROM unnest(%s::int[], %s::text[], %s::text[]) "
    "AS a(n, subject_id, prefix)), "
    "caller AS MATERIALIZED (SELECT a.n, a.subject_id AS asked, "
    "(SELECT id FROM policy_versions WHERE active) AS policy_id, "
    "(SELECT 1 FROM subjects s WHERE s.id = a.subject_id) AS known, "
    "k.authority_id, k.key_hash, k.revoked_at "
    "FROM ask a LEFT JOIN api_keys k ON k.prefix = a.prefix) "
    "SELECT caller.n, caller.policy_id, caller.known, caller.authority_id, caller.key_hash, "
    "caller.revoked_at, " + repository.FACTS_COLUMNS + " FROM caller "
    "LEFT JOIN (" + repository.FACTS_JOIN + ") ON r.subject_id = caller.asked "
    "ORDER BY caller.n, r.id"
)

_Params = tuple[str, str | None, str]


class AsyncLookups(LoopBatcher[_Params, list[Any]]):
    """Concurrent standing lookups on one event loop share one statement and round trip.

    The group commit of `AsyncInquiryLog`, for reads (`LoopBatcher`): whatever queued while
    the previous statement ran goes as one `_LOOKUP_MANY`; a lone lookup goes at once, as
    `_LOOKUP`. On this 2-core machine a round trip to PostgreSQL over TCP costs the client
    more CPU than the statement costs the server (docs/performance.md), and under load a
    worker has a dozen lookups waiting at any moment.

    One lookup's rows are exactly what `_LOOKUP` returns for it alone. A batch that fails
    because the database is away fails each of its lookups with that error (503). Any other
    failure is one lookup's doing (a value the database refuses, say): the batch is then
    asked again one lookup at a time, so each gets its own answer or its own error.
    """

    MAX_BATCH = 64

    async def rows(self, params: _Params) -> list[Any]:
        """The rows of `_LOOKUP` for these parameters."""
        return await self.submit(params)

    async def handle(self, items: list[_Params]) -> list[list[Any] | Exception]:
        """The rows of each lookup, from one statement (or one each, after a refusal)."""
        try:
            return list(await self._fetch(items))
        except psycopg.OperationalError:  # the database is away: every lookup fails
            raise
        except Exception:
            if len(items) == 1:
                raise
        results: list[list[Any] | Exception] = []
        for params in items:
            try:
                results.extend(await self._fetch([params]))
            except Exception as exc:
                results.append(exc)
        return results

    async def _fetch(self, asks: list[_Params]) -> list[list[Any]]:
        async with async_connection(self.engine) as conn:
            if len(asks) == 1:
                cursor = await conn.execute(_LOOKUP_PG, asks[0])
                return [await cursor.fetchall()]
            cursor = await conn.execute(
                _LOOKUP_MANY,
                (
                    list(range(len(asks))),
                    [subject for subject, _, _ in asks],
                    [prefix for _, prefix, _ in asks],
                ),
            )
            found: list[list[Any]] = [[] for _ in asks]
            for row in await cursor.fetchall():
                found[row[0]].append(row[1:])
            return found


# The lookup batcher of a PostgreSQL database on the running event loop.
async_lookups = PerLoop(AsyncLookups)


@dataclass(frozen=True)
class _Ask:
    """One standing lookup as asked: by an authority acting, or by an API key's holder."""

    subject_id: str
    purpose_id: str
    as_of: date | None
    authority_id: str | None
    api_key: str | None

    def __post_init__(self) -> None:
        if (self.authority_id is None) == (self.api_key is None):
            raise ValueError("give exactly one of authority_id and api_key")

    def params(self) -> _Params:
        """The lookup statement's parameters (a malformed key is refused here: 401)."""
        prefix = key_prefix(self.api_key) if self.api_key is not None else None
        return (self.subject_id, prefix, self.subject_id)


def _answer(
    register: Register, policy: Policy | None, rows: list[Any], ask: _Ask
) -> tuple[dict[str, Any], Inquiry]:
    """Judge the lookup's rows in the promised order, then score: the answer and its inquiry."""
    first = rows[0]
    authority_id = ask.authority_id
    if ask.api_key is not None:
        authority_id = key_authority(first[2:5], ask.api_key)
    assert authority_id is not None
    subject_id, purpose_id = ask.subject_id, ask.purpose_id
    if policy is None:
        raise NoActivePolicyError("no policy is active yet: run `credo policy activate FILE` first")
    check_purpose(policy, authority_id, purpose_id)
    if first[1] is None:
        raise NotFoundError(
            f"subject {subject_id!r} is not registered",
            [Problem("subject_id", "not registered")],
        )
    day = ask.as_of or register.clock.today()
    facts = repository.facts_from_rows(rows, _FACTS_FROM)
    # only the measures the answer may show (visible_standing): the asker's own, if any
    standing = compute_standing(
        policy, subject_id, facts, day, measures=shown_measures(policy, authority_id, purpose_id)
    )
    inquiry = Inquiry(subject_id, authority_id, purpose_id, day, register.clock.now(), "api")
    return visible_standing(policy, standing, authority_id, purpose_id), inquiry


def _cached_policy(register: Register, version_id: int | None) -> Policy | None:
    """The parsed active policy when this process has already read that version."""
    cached = _active_policies.get(register.engine)
    if cached is not None and cached[0] == version_id:
        return cached[1]
    return None


def _policy(register: Register, version_id: int | None) -> Policy | None:
    """The parsed active policy (None: none is active); its text is read again only when the
    active version changed."""
    if version_id is None:
        return None
    cached = _cached_policy(register, version_id)
    if cached is not None:
        return cached
    with register.read() as conn:
        found_id, policy = register.active_policy(conn)
    _active_policies[register.engine] = (found_id, policy)
    return policy


# The last active policy seen per database, in this process.
_active_policies: weakref.WeakKeyDictionary[Engine, tuple[int, Policy]] = (
    weakref.WeakKeyDictionary()
)
