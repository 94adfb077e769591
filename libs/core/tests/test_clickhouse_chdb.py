"""The ClickHouse client factory and migrations against the real embedded engine (chDB)."""

from __future__ import annotations

from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from callstream_core.clickhouse import Migration, load_migrations, migrate

pytestmark = pytest.mark.integration


def test_migrations_apply_once_and_refuse_edits(clickhouse: Client, tmp_path: Path) -> None:
    client = clickhouse
    (tmp_path / "001_facts.sql").write_text(
        "-- the facts\nCREATE TABLE IF NOT EXISTS facts (id UInt64, v String) ENGINE = MergeTree ORDER BY id "
        "SETTINGS non_replicated_deduplication_window = 1000;\n"
        "CREATE TABLE IF NOT EXISTS facts2 (id UInt64) ENGINE = MergeTree ORDER BY id;\n"
    )
    migrations = load_migrations(tmp_path)
    assert migrate(client, migrations, component="t") == [1]
    assert migrate(client, migrations, component="t") == []
    changed = [Migration(1, "facts", migrations[0].sql + "\n-- edited")]
    with pytest.raises(RuntimeError, match="changed after it was applied"):
        migrate(client, changed, component="t")


def test_same_dedup_token_is_stored_once(clickhouse: Client) -> None:
    client = clickhouse
    client.command("CREATE TABLE IF NOT EXISTS dedup (id UInt64) ENGINE = MergeTree ORDER BY id "
                   "SETTINGS non_replicated_deduplication_window = 1000")
    for _ in range(3):
        client.insert("dedup", [[1], [2]], column_names=["id"],
                      settings={"insert_deduplication_token": "topic-0-100-101"})
    assert client.query("SELECT count() FROM dedup").result_rows[0][0] == 2


def test_bad_migration_names_are_refused(tmp_path: Path) -> None:
    (tmp_path / "first.sql").write_text("SELECT 1")
    with pytest.raises(ValueError, match="NNN_description"):
        load_migrations(tmp_path)
