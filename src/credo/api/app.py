"""The FastAPI application factory."""

from __future__ import annotations

from fastapi import FastAPI

from credo import __version__
from credo.api import errors, records, standing
from credo.services.register import Register


def create_app(register: Register | None = None) -> FastAPI:
    """Build the app around a register (by default the one the settings describe)."""
    if register is None:
        from credo.bootstrap import build_register

        register = build_register(migrate=False)
    app = FastAPI(
        title="credo",
        version=__version__,
        summary="An integrity register for public institutions, with due process built in.",
        docs_url="/docs",
    )
    app.state.register = register
    errors.install(app)
    app.include_router(records.router)
    app.include_router(standing.router)

    @app.get("/healthz", tags=["service"])
    def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    return app
