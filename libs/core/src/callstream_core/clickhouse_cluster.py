"""The single-server migrations rendered for a ClickHouse cluster (docs/deploy-kubernetes.md, "Scale-out").

Each table `T` becomes `T_local`, a Replicated table on every shard, plus a Distributed table under the name `T`
that spreads rows by the first column of `T`'s ORDER BY (a call's, an agent's, an employee's rows stay on one
shard, so `FINAL` and the deduplication keep working per shard); a column change alters both; every statement
runs `ON CLUSTER`. The SQL that
reads and writes `T` stays as it is. Rendered from the same files, so the two variants cannot drift; a statement
of a shape not known here is refused, never passed through unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_TABLE = re.compile(
    r"^CREATE TABLE IF NOT EXISTS (?P<name>\w+) (?P<columns>\(.*\))\s*"
    r"ENGINE = (?P<engine>\w*MergeTree)(?:\((?P<args>[^)]*)\))?(?P<rest>.*)$",
    re.S,
)
# A column change applies to the shards' tables and to the Distributed table, whose columns mirror them.
_ALTER_COLUMN = re.compile(r"^ALTER TABLE (?P<name>\w+) (?P<change>(?:ADD|DROP|MODIFY|RENAME) COLUMN\b.*)$", re.S)
_VIEW = re.compile(r"^CREATE VIEW IF NOT EXISTS (?P<name>\w+) AS\b(?P<query>.*)$", re.S)
_SHARDING_KEY = re.compile(r"\bORDER BY \(?\s*(\w+)")
# Replicated tables deduplicate inserts by their own window (the insert_deduplication_token of the sinks).
_DEDUP_WINDOW = "non_replicated_deduplication_window"


class UnknownStatement(ValueError):
    pass


def cluster_statements(statements: Sequence[str], cluster: str) -> list[str]:
    """The cluster variant of one migration's statements (`Migration.statements()`)."""
    rendered: list[str] = []
    for statement in statements:
        if table := _TABLE.match(statement):
            rendered += _table(table, cluster)
        elif alter := _ALTER_COLUMN.match(statement):
            rendered += [f"ALTER TABLE {alter['name']}_local ON CLUSTER '{cluster}' {alter['change']}",
                         f"ALTER TABLE {alter['name']} ON CLUSTER '{cluster}' {alter['change']}"]
        elif view := _VIEW.match(statement):
            rendered.append(f"CREATE VIEW IF NOT EXISTS {view['name']} ON CLUSTER '{cluster}' AS{view['query']}")
        else:
            raise UnknownStatement(f"no cluster rendering for: {statement[:80]!r}")
    return rendered


def _table(match: re.Match[str], cluster: str) -> list[str]:
    name, local = match["name"], f"{match['name']}_local"
    key = _SHARDING_KEY.search(match["rest"])
    if key is None:
        raise UnknownStatement(f"table {name} has no ORDER BY to shard by")
    args = ", ".join(filter(None, [f"'/clickhouse/tables/{{shard}}/{{database}}/{local}'", "'{replica}'",
                                   match["args"]]))
    rest = match["rest"].replace(_DEDUP_WINDOW, "replicated_deduplication_window")
    return [
        f"CREATE TABLE IF NOT EXISTS {local} ON CLUSTER '{cluster}' {match['columns']}\n"
        f"ENGINE = Replicated{match['engine']}({args}){rest}",
        f"CREATE TABLE IF NOT EXISTS {name} ON CLUSTER '{cluster}' AS {local}\n"
        f"ENGINE = Distributed('{cluster}', currentDatabase(), {local}, cityHash64({key[1]}))",
    ]
