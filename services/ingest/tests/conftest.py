"""Kafka helpers for the ingest produce-path tests: topics created once, consume back by source."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, TopicPartition

from callstream_core import wire
from callstream_core.kafka import apply_topics
from callstream_core.topics import topic

EVENT_TOPICS = ("cc.call-events.v1", "cc.agent-events.v1")


@pytest.fixture(scope="session")
def ingest_kafka(kafka_bootstrap: str) -> str:
    apply_topics(kafka_bootstrap, [topic(t) for t in EVENT_TOPICS])
    return kafka_bootstrap


def read_topic(bootstrap: str, name: str, keep: Callable[[object, dict[str, bytes]], bool], expected: int,
               timeout: float = 60.0, needle: bytes = b"", partitions: dict[str | None, set[int]] | None = None,
               ) -> list[tuple[str | None, object, dict[str, bytes]]]:
    """Read `name` from the beginning; return (key, decoded value, headers) of kept records; stop at
    `expected` kept records (then wait briefly for extras) or at the timeout. `partitions`, when given,
    gets the partitions each kept key was read from."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"t-{uuid.uuid4()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    meta = consumer.list_topics(name, timeout=10)
    consumer.assign([TopicPartition(name, p, 0) for p in meta.topics[name].partitions])
    out: list[tuple[str | None, object, dict[str, bytes]]] = []
    deadline = time.monotonic() + timeout
    extra_until: float | None = None
    is_dlq = name.endswith(".dlq")
    try:
        while time.monotonic() < deadline and (extra_until is None or time.monotonic() < extra_until):
            for msg in consumer.consume(1000, 0.5):
                if msg.error():
                    continue
                if needle and needle not in (msg.value() or b""):
                    continue  # cheap pre-filter: the topic holds other tests' events too
                headers = {k: v for k, v in (msg.headers() or [])}
                if is_dlq:
                    value: object = msg.value()
                else:
                    value = wire.decode(msg.value(), topic(name).message_type,
                                        wire.header_value(msg.headers(), wire.CONTENT_TYPE))
                if keep(value, headers):
                    key = msg.key()
                    out.append((key.decode() if key else None, value, headers))
                    if partitions is not None:
                        partitions.setdefault(out[-1][0], set()).add(msg.partition() or 0)
            if len(out) >= expected and extra_until is None:
                extra_until = time.monotonic() + 1.0
    finally:
        consumer.close()
    return out


def by_source(source: str) -> Callable[[object, dict[str, bytes]], bool]:
    return lambda value, _h: getattr(getattr(value, "envelope", None), "source", None) == source


@pytest.fixture
def consume(ingest_kafka: str) -> Callable[..., list[tuple[str | None, object, dict[str, bytes]]]]:
    """consume(topic, source=..., expected=N) or consume(topic, keep=fn, expected=N)."""

    def run(name: str, expected: int, source: str | None = None,
            keep: Callable[[object, dict[str, bytes]], bool] | None = None, timeout: float = 60.0,
            partitions: dict[str | None, set[int]] | None = None,
            ) -> list[tuple[str | None, object, dict[str, bytes]]]:
        predicate = keep or by_source(source or "")
        return read_topic(ingest_kafka, name, predicate, expected, timeout,
                          needle=(source or "").encode(), partitions=partitions)

    return run
