"""The alembic migrations build exactly the schema the models describe (SQLite and PostgreSQL), run
twice without harm, and settings fail fast on bad values."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from pydantic import ValidationError
from sqlalchemy import Engine, inspect, text

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


def test_history_migration_records_the_hire_and_leaving_of_existing_employees(engine: Engine) -> None:
    migrate(engine, "0001")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO teams (id, name, lead_id) VALUES ('t1', 'Team 1', 'lead-1')"))
        conn.execute(text("INSERT INTO employees (id, full_name, role, team_id, fte, hired_on, left_on, exit_reason, "
                          "exit_team_lead_id) VALUES ('e1', 'A', 'agent', 't1', 1.0, '2025-01-06', NULL, NULL, NULL), "
                          "('e2', 'B', 'agent', 't1', 0.5, '2025-02-03', '2026-03-31', 'pay', 'lead-0')"))
    migrate(engine)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT employee_id, effective_on, change, role, team_id, team_lead_id, reason "
                                 "FROM employment_history ORDER BY employee_id, effective_on")).all()
    assert [(r[0], str(r[1]), *r[2:]) for r in rows] == [
        ("e1", "2025-01-06", "hired", "agent", "t1", "lead-1", None),
        ("e2", "2025-02-03", "hired", "agent", "t1", "lead-1", None),
        ("e2", "2026-03-31", "left", "agent", "t1", "lead-0", "pay")]


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
