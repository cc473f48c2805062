"""Password hashing: argon2id, its cost from the settings, every stored hash still valid."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher, extract_parameters

from credo.services import accounts
from credo.settings import Settings


def test_the_production_profile_is_argon2_cffis_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TIME_COST", "MEMORY_KIB", "PARALLELISM"):
        monkeypatch.delenv(f"CREDO_PASSWORD_{name}", raising=False)
    settings = Settings()
    default = PasswordHasher()
    assert (
        settings.password_time_cost,
        settings.password_memory_kib,
        settings.password_parallelism,
    ) == (default.time_cost, default.memory_cost, default.parallelism)


def test_a_hash_keeps_its_own_cost_when_the_settings_change(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CREDO_PASSWORD_TIME_COST", "2")
    monkeypatch.setenv("CREDO_PASSWORD_MEMORY_KIB", "256")
    accounts._hasher.cache_clear()
    try:
        stored = accounts._hasher().hash("s3cret-pass")
        params = extract_parameters(stored)
        assert (params.time_cost, params.memory_cost) == (2, 256)
        monkeypatch.setenv("CREDO_PASSWORD_TIME_COST", "1")
        monkeypatch.setenv("CREDO_PASSWORD_MEMORY_KIB", "64")
        accounts._hasher.cache_clear()
        assert accounts._hasher().verify(stored, "s3cret-pass")
        assert extract_parameters(accounts._hasher().hash("x")).memory_cost == 64
    finally:
        accounts._hasher.cache_clear()
