"""ClickHouse through clickhouse-connect only: `chdb:///path` (embedded engine) or `http(s)://host:8123`.

The same SQL and the same migrations run on both (architecture.md, "Delivery and storage").
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import clickhouse_connect
from clickhouse_connect.driver.client import Client

_CHDB_LOCK = threading.Lock()
# chDB allows one engine (one data directory) per process; clients of several databases share it.
_CHDB_CLIENTS: dict[tuple[str, str], Client] = {}


def get_client(url: str, *, database: str = "default") -> Client:
    if url.startswith("chdb://"):
        path = urlparse(url).path
        if not path.startswith("/"):
            raise ValueError(f"{url!r}: the chDB data directory must be an absolute path")
        with _CHDB_LOCK:
            if (path, database) not in _CHDB_CLIENTS:
                Path(path).mkdir(parents=True, exist_ok=True)
                if database != "default":
                    get_default = _CHDB_CLIENTS.get((path, "default")) or clickhouse_connect.get_client(
                        dsn=f"chdb://{path}")
                    _CHDB_CLIENTS[(path, "default")] = get_default
                    get_default.command(f"CREATE DATABASE IF NOT EXISTS `{database}`")
                _CHDB_CLIENTS[(path, database)] = clickhouse_connect.get_client(dsn=f"chdb://{path}",
                                                                                database=database)
            return _CHDB_CLIENTS[(path, database)]
    client = clickhouse_connect.get_client(dsn=url)
    if database != "default":
        client.command(f"CREATE DATABASE IF NOT EXISTS `{database}`")
        client = clickhouse_connect.get_client(dsn=url, database=database)
    return client


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()[:16]

    def statements(self) -> list[str]:
        # One statement per `;` at the end of a line; comments stripped. No `;` inside string literals.
        body = "\n".join(line for line in self.sql.splitlines() if not line.strip().startswith("--"))
        return [s.strip() for s in re.split(r";\s*(?:\n|$)", body) if s.strip()]


_NAME = re.compile(r"^(\d{3,})_([a-z0-9_]+)\.sql$")


def load_migrations(directory: Path) -> list[Migration]:
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise ValueError(f"{path}: migration files are named NNN_description.sql")
        found.append(Migration(int(match.group(1)), match.group(2), path.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ValueError(f"{directory}: two migrations share a version")
    return found


def migrate(client: Client, migrations: list[Migration], *, component: str) -> list[int]:
    """Apply the migrations not yet applied for `component`; refuse to run if an applied one changed."""
    client.command(
        "CREATE TABLE IF NOT EXISTS schema_migrations (component String, version UInt32, name String, "
        "checksum String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
        "ENGINE = ReplacingMergeTree ORDER BY (component, version)"
    )
    applied: dict[int, Any] = {
        int(row[0]): row[1]
        for row in client.query(
            "SELECT version, checksum FROM schema_migrations FINAL WHERE component = {c:String}",
            parameters={"c": component},
        ).result_rows
    }
    done = []
    for migration in migrations:
        if migration.version in applied:
            if applied[migration.version] != migration.checksum:
                raise RuntimeError(
                    f"{component} migration {migration.version}_{migration.name} was changed after it was "
                    "applied: add a new migration instead"
                )
            continue
        for statement in migration.statements():
            client.command(statement)
        client.insert("schema_migrations", [[component, migration.version, migration.name, migration.checksum]],
                      column_names=["component", "version", "name", "checksum"])
        done.append(migration.version)
    return done
