"""Session fixtures with real parts for every test in the workspace: one Kafka broker per test session
(or the one named in KAFKA_BOOTSTRAP_SERVERS), started from the jars Maven fetched, and one ClickHouse
engine (chDB, or the server CLICKHOUSE_URL names)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from callstream_core.clickhouse import get_client
from callstream_devtools.local_kafka import LocalKafka


def _docker_engine() -> bool:
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env().ping()
    except Exception:
        return False
    return True


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield os.environ["KAFKA_BOOTSTRAP_SERVERS"]
        return
    if os.environ.get("CALLSTREAM_TEST_KAFKA") == "testcontainers" and _docker_engine():
        from testcontainers.kafka import KafkaContainer  # type: ignore[import-not-found]

        with KafkaContainer().with_kraft() as container:
            yield container.get_bootstrap_server()
        return
    with LocalKafka(Path(tmp_path_factory.mktemp("kafka"))) as broker:
        yield broker.bootstrap_servers


@pytest.fixture(scope="session")
def clickhouse_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """CLICKHOUSE_URL when it names a server, else one chDB engine for the session (one per process)."""
    configured = os.environ.get("CLICKHOUSE_URL", "")
    if configured.startswith(("http://", "https://")):
        return configured
    return f"chdb://{tmp_path_factory.mktemp('chdb')}"


@pytest.fixture
def clickhouse(clickhouse_url: str, request: pytest.FixtureRequest) -> Client:
    """A client on a database of this test's own, so tests sharing the engine do not see each other."""
    name = "t_" + uuid.uuid4().hex[:12]
    return get_client(clickhouse_url, database=name)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in an `integration/` folder (a service's, or the root `tests/integration`) carries the
    `integration` marker, so `-m "not integration"` runs the unit tests alone in any service."""
    for item in items:
        if "integration" in item.path.parts:
            item.add_marker(pytest.mark.integration)
