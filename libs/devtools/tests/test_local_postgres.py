from __future__ import annotations

from pathlib import Path

import pytest

from callstream_devtools.local_postgres import LocalPostgres

pytestmark = pytest.mark.skipif(not LocalPostgres.available(),
                                reason="PostgreSQL binaries not installed (apt-get install postgresql)")


def test_starts_answers_and_stops(tmp_path: Path) -> None:
    import sqlalchemy as sa

    with LocalPostgres(tmp_path) as pg:
        assert pg.url.startswith("postgresql+psycopg://postgres@127.0.0.1:")
        data_dir = pg.data_dir
        engine = sa.create_engine(pg.url)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT 1 + 1")).scalar_one() == 2
            assert conn.execute(sa.text("SHOW listen_addresses")).scalar_one() == "127.0.0.1"
        engine.dispose()
    assert not data_dir.exists()
