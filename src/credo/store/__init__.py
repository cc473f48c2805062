"""Persistence: SQLAlchemy tables, Alembic migrations, repositories and set-based rescoring."""
