"""The one typed settings object, read from CREDO_* environment variables."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import platformdirs
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_home() -> Path:
    return Path(platformdirs.user_data_dir("credo", appauthor=False))


class Settings(BaseSettings):
    """Where the register lives and how it runs.

    >>> Settings(home=Path("/tmp/reg")).resolved_database_url()
    'sqlite:////tmp/reg/credo.sqlite3'
    """

    model_config = SettingsConfigDict(env_prefix="CREDO_", extra="ignore")

    home: Path = Field(default_factory=_default_home)
    database_url: str | None = None
    today: date | None = None  # fixes the clock (demos, tests, what-if runs)
    batch_size: int = 50_000  # rows per transaction (subjects, in-memory rows)
    chunk_bytes: int = 4 << 20  # bytes of whole rows per batch (audit entry) in `credo import`
    commit_rows: int = 100_000  # `credo import` commits once this many rows are in
    fairness_threshold: float = 0.8  # `credo report fairness`: the four-fifths rule
    host: str = "127.0.0.1"
    port: int = 8000
    smtp_host: str | None = None  # notices are mailed when set; otherwise only stored
    smtp_port: int = 25
    smtp_from: str = "credo@localhost"
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    session_hours: int = 8
    public_requests_per_minute: int = 60
    session_idle_minutes: int = 30  # a web session ends after this long without a request
    # Argon2id cost of new password hashes (argon2-cffi's defaults, RFC 9106's low-memory
    # profile). A hash carries its own parameters, so changing these never locks anyone out.
    password_time_cost: int = Field(default=3, ge=1)
    password_memory_kib: int = Field(default=65536, ge=8)
    password_parallelism: int = Field(default=4, ge=1)

    def resolved_database_url(self) -> str:
        """CREDO_DATABASE_URL, or the embedded SQLite file under CREDO_HOME (as an absolute
        path: the same file is then the same database for every use, the preview's snapshot
        included, whatever directory a command runs in)."""
        if self.database_url:
            url = self.database_url
            if url.startswith("postgresql://") or url.startswith("postgres://"):
                url = "postgresql+psycopg://" + url.split("://", 1)[1]
            return url
        return f"sqlite:///{(self.home / 'credo.sqlite3').resolve()}"
