"""HR's alembic migrations (run at start-up), on callstream_core.db's engine."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from callstream_core import db

MIGRATIONS = Path(__file__).parent / "migrations"


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision` (default the newest; idempotent)."""
    db.migrate(engine, MIGRATIONS, revision)
