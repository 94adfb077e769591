"""An empty HR database engine on SQLite and (when installed) a throwaway PostgreSQL server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from callstream_core.db import make_engine


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path}/m.db")
        yield eng
        eng.dispose()
        return
    from callstream_core.local_postgres import LocalPostgres

    if not LocalPostgres.available():
        pytest.skip("PostgreSQL binaries are not installed")
    with LocalPostgres(tmp_path) as pg:
        eng = make_engine(pg.url)
        yield eng
        eng.dispose()
