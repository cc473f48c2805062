"""Settings: where the register lives."""

from __future__ import annotations

from pathlib import Path

import pytest

from credo.settings import Settings


def test_the_embedded_database_is_named_by_its_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative CREDO_HOME names the same file, by the same URL, from any directory: the
    preview's snapshot is kept under a name made from that URL."""
    (tmp_path / "a").mkdir()
    monkeypatch.chdir(tmp_path)
    relative = Settings(home=Path("reg")).resolved_database_url()
    monkeypatch.chdir(tmp_path / "a")
    from_below = Settings(home=Path("../reg")).resolved_database_url()
    assert relative == from_below == f"sqlite:///{(tmp_path / 'reg').resolve()}/credo.sqlite3"


def test_a_database_url_is_taken_as_given_with_the_psycopg_driver() -> None:
    url = Settings(database_url="postgresql://u@h:5432/db").resolved_database_url()
    assert url == "postgresql+psycopg://u@h:5432/db"
