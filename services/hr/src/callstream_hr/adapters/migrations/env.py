"""Alembic environment: the connection is handed over by `callstream_hr.adapters.db.migrate`."""

from __future__ import annotations

from alembic import context

from callstream_hr.adapters.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through callstream_hr.adapters.db.migrate(engine)")
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
