"""SQL database helpers of the services that keep state in SQL (HR, QA): engine, sessions, migrations, UTC.

SQLite (one file, `make run` and tests) and PostgreSQL (Kubernetes) behind one engine factory; each service
keeps its own alembic scripts and hands their folder to `migrate`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

# Seconds a SQLite connection waits for another writer's lock before "database is locked": the outbox relay
# thread and the HTTP workers write the same file, and a relay batch holds the lock while Kafka confirms.
SQLITE_BUSY_TIMEOUT_S = 30


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite gets foreign keys (off by default there) and WAL (readers do not block the
    writer), PostgreSQL a liveness check of pooled connections (a restarted server leaves dead ones)."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_S})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def migrate(engine: Engine, migrations: Path, revision: str = "head") -> None:
    """Bring the schema to `revision` with the alembic scripts in `migrations` (idempotent), in one transaction
    on a connection of `engine` (the scripts' env.py takes it from `config.attributes["connection"]`)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    # expire_on_commit=False: a use case returns the rows it committed, read after the commit without a reload.
    return sessionmaker(engine, expire_on_commit=False)


def utc(moment: datetime) -> datetime:
    """`moment` in UTC; SQLite returns naive datetimes, and everything stored is UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def now() -> datetime:
    return datetime.now(UTC)
