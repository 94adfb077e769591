"""The KPI stream's migrations render for one server (as applied today) and for a ClickHouse cluster; ClickHouse's
own parser (chDB, `EXPLAIN AST`) reads every statement of both, and the cluster tables keep the columns, sort key
and engine arguments of the single-server ones."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from callstream_core.clickhouse import Migration, load_migrations
from callstream_core.clickhouse_cluster import UnknownStatement, cluster_statements

MIGRATIONS = Path(__file__).resolve().parents[2] / "services" / "kpi-stream" / "src" / "callstream_kpi" / "adapters" \
    / "migrations"
pytestmark = pytest.mark.integration


def _ast(client: Client, statement: str) -> list[str]:
    return [row[0] for row in client.query(f"EXPLAIN AST {statement}").result_rows]


def _subtree(ast: list[str], title: str) -> list[str]:
    """The lines of the AST node whose line starts with `title`, with its children (deeper indentation)."""
    start = next(i for i, line in enumerate(ast) if line.strip().startswith(title))
    depth = len(ast[start]) - len(ast[start].lstrip())
    end = next((i for i in range(start + 1, len(ast)) if len(ast[i]) - len(ast[i].lstrip()) <= depth), len(ast))
    return ast[start:end]


@pytest.mark.parametrize("migration", load_migrations(MIGRATIONS), ids=lambda m: m.name)
def test_both_renderings_parse_and_the_cluster_keeps_each_table(clickhouse: Client, migration: Migration) -> None:
    single = migration.statements()
    cluster = cluster_statements(single, "callstream")
    for statement in single + cluster:
        assert _ast(clickhouse, statement)[0].startswith(("CreateQuery", "AlterQuery"))
    tables = [s for s in single if s.startswith("CREATE TABLE")]
    alters = [s for s in single if s.startswith("ALTER TABLE")]
    # A table becomes a local and a Distributed table; a column change alters both.
    assert len(cluster) == len(single) + len(tables) + len(alters)
    for alter in alters:
        name, change = re.match(r"ALTER TABLE (\w+) (.*)$", alter, re.S).groups()  # type: ignore[union-attr]
        assert f"ALTER TABLE {name}_local ON CLUSTER 'callstream' {change}" in cluster
        assert f"ALTER TABLE {name} ON CLUSTER 'callstream' {change}" in cluster
    for table in tables:
        name = re.match(r"CREATE TABLE IF NOT EXISTS (\w+)", table)[1]  # type: ignore[index]
        (local,) = [s for s in cluster if s.startswith(f"CREATE TABLE IF NOT EXISTS {name}_local ON CLUSTER")]
        (distributed,) = [s for s in cluster if s.startswith(f"CREATE TABLE IF NOT EXISTS {name} ON CLUSTER")]
        one, many = _ast(clickhouse, table), _ast(clickhouse, local)
        assert _subtree(one, "Columns definition") == _subtree(many, "Columns definition")
        engine_one, engine_many = _subtree(one, "Storage definition"), _subtree(many, "Storage definition")
        engine = re.compile(r"Function (\w+)")
        assert engine.search(engine_many[1])[1] == "Replicated" + engine.search(engine_one[1])[1]  # type: ignore[index]
        # Partition and sort keys: the same AST nodes after the engine's arguments.
        keys_one = [line for line in engine_one if line.startswith("  Identifier") or line.startswith("  Function")]
        keys_many = [line for line in engine_many if line.startswith("  Identifier") or line.startswith("  Function")]
        assert keys_many[1:] == keys_one[1:] and len(keys_one) >= 2
        # The engine's own arguments (e.g. the version column) follow the ZooKeeper path and the replica name.
        assert f"'/clickhouse/tables/{{shard}}/{{database}}/{name}_local'" in local and "'{replica}'" in local
        sort_key = re.search(r"ORDER BY \(?\s*(\w+)", table)[1]  # type: ignore[index]
        assert distributed.endswith(f"Distributed('callstream', currentDatabase(), {name}_local, "
                                    f"cityHash64({sort_key}))")
        assert "non_replicated_deduplication_window" not in local


def test_a_statement_of_an_unknown_shape_is_refused() -> None:
    with pytest.raises(UnknownStatement, match="ALTER TABLE contacts DELETE"):
        cluster_statements(["ALTER TABLE contacts DELETE WHERE call_id = ''"], "callstream")
