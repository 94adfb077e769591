"""QA's alembic migrations (run at start-up), on callstream_core.db's engine."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from callstream_core import db

MIGRATIONS = Path(__file__).parent / "migrations"


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (idempotent)."""
    db.migrate(engine, MIGRATIONS)
