"""The alembic migrations build exactly the schema the models describe (SQLite and PostgreSQL), run
twice without harm, and settings fail fast on bad values."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from pydantic import ValidationError
from sqlalchemy import Engine, inspect

from callstream_hr.adapters.db import migrate
from callstream_hr.adapters.models import Base
from callstream_hr.config import HrSettings


def test_migrations_match_models(engine: Engine) -> None:
    migrate(engine)
    migrate(engine)  # idempotent: already at head
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    assert "alembic_version" in inspect(engine).get_table_names()


@pytest.mark.parametrize(("field", "value"), [
    ("database_url", "mysql://x"),
    ("team_lead_scopes", "no-team-here"),
    ("api_tokens", "short:hr"),
    ("http_port", 0),
    ("kpi_api_url", "kpi:8001"),
    ("kpi_api_url", "http://kpi:8001"),  # without a token
    ("kpi_api_token", "token-without-url"),
    ("kpi_api_timeout_s", 0),
])
def test_settings_fail_fast(field: str, value: object) -> None:
    with pytest.raises(ValidationError):
        HrSettings(**{field: value})  # type: ignore[arg-type]
