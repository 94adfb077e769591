"""Session fixtures with real parts: one Kafka broker per test session (or the one named in
KAFKA_BOOTSTRAP_SERVERS), started from the jars Maven fetched."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from callstream_core.local_kafka import LocalKafka


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
