"""The one place where settings, engine, clock and services are wired together."""

from __future__ import annotations

from credo.clock import Clock, FixedDateClock, SystemClock
from credo.services.register import Register
from credo.settings import Settings
from credo.store.db import make_engine, upgrade


def build_register(
    settings: Settings | None = None, *, clock: Clock | None = None, migrate: bool = True
) -> Register:
    """A register for these settings, its schema upgraded to the newest migration."""
    settings = settings or Settings()
    engine = make_engine(settings.resolved_database_url())
    if migrate:
        upgrade(engine)
    if clock is None:
        clock = FixedDateClock(settings.today) if settings.today else SystemClock()
    return Register(engine=engine, clock=clock, home=settings.home)
