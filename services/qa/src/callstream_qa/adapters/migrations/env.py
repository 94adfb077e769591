"""Alembic environment: run programmatically by `callstream_qa.adapters.db.migrate` (a connection is passed in)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from callstream_qa.adapters.orm import Base

config = context.config
connection = config.attributes.get("connection")
if connection is not None:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "sqlite://")
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=Base.metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
