"""Kafka clients set up for the delivery rules of architecture.md ("Delivery and storage").

Producers: acks=all, idempotence on, murmur2 partitioning (so confluent-kafka, aiokafka and Faust put
a key on the same partition). Consumers: offsets are stored only after the sink succeeded; a message
that cannot be decoded or validated goes to T.dlq with headers naming where it came from and why.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from google.protobuf.message import Message as ProtoMessage

from callstream_core import wire
from callstream_core.topics import DLQ_SUFFIX, TOPICS, Topic

log = logging.getLogger(__name__)
# librdkafka's own log lines go through Python logging (JSON logs in services, captured in tests).
LIBRDKAFKA_LOG = logging.getLogger("librdkafka")
M = TypeVar("M", bound=ProtoMessage)

PRODUCER_DEFAULTS: dict[str, Any] = {
    # Every in-sync replica must have the write before it is confirmed: no loss on a broker failover.
    "acks": "all",
    # The broker drops a retried duplicate batch, so retries cannot create repeats or reorder a key.
    "enable.idempotence": True,
    # Java clients, aiokafka and Faust partition by murmur2; librdkafka's default (CRC32) would not agree.
    "partitioner": "murmur2_random",
    # A short linger batches bursts without hurting latency noticeably (the freshness goal is seconds).
    "linger.ms": 5,
    "compression.type": "lz4",
    # Retry for up to two minutes before reporting a failure: Kafka being slow is not an error.
    "delivery.timeout.ms": 120_000,
}

CONSUMER_DEFAULTS: dict[str, Any] = {
    # Offsets are stored by us only after the sink succeeded; the background commit sends what is stored.
    "enable.auto.offset.store": False,
    "enable.auto.commit": True,
    "auto.commit.interval.ms": 1000,
    # A new group reads the topic from the beginning: no event is skipped on first start.
    "auto.offset.reset": "earliest",
    # Keys of one partition keep their order; rebalances only move whole partitions (cooperative).
    "partition.assignment.strategy": "cooperative-sticky",
    "isolation.level": "read_committed",
}


class DeliveryError(RuntimeError):
    """Kafka did not confirm a write within the delivery timeout."""


class EventProducer:
    """Produces contract messages with their key; `produce_sync` returns only when Kafka confirmed."""

    # produce() serves delivery callbacks every this many messages: librdkafka queues them until a poll,
    # and serving them in bunches costs less than a poll per message (flush() and poller threads serve
    # the rest, so a caller waiting for confirmation never waits on this cadence).
    POLL_EVERY = 256

    def __init__(
        self, bootstrap_servers: str, *, client_id: str, wire_format: str = "json",
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.wire_format = wire_format
        self._content_type = wire.content_type(wire_format)
        # Every message says its wire format; one list serves them all (librdkafka copies the headers).
        self._headers: list[tuple[str, str | bytes | None]] = [(wire.CONTENT_TYPE, self._content_type.encode())]
        config = {**PRODUCER_DEFAULTS, "bootstrap.servers": bootstrap_servers, "client.id": client_id,
                  "logger": LIBRDKAFKA_LOG}
        self._producer = Producer({**config, **(extra or {})})
        self._unpolled = 0

    def produce(
        self, topic: str, message: ProtoMessage, *, key: str,
        on_delivery: Callable[[KafkaError | None, Message], None] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Queue a message; back-pressure: when the local queue is full, wait for deliveries, never drop."""
        value = wire.encode(message, self.wire_format)
        all_headers = self._headers
        if headers:
            all_headers = all_headers + [(k, v.encode()) for k, v in headers.items()]
        while True:
            try:
                self._producer.produce(topic, value, key, headers=all_headers, on_delivery=on_delivery)
                break
            except BufferError:
                # The local queue is full (Kafka slow or down): serve callbacks until there is room.
                self._producer.poll(0.1)
        self._unpolled += 1
        if self._unpolled >= self.POLL_EVERY:
            self._unpolled = 0
            self._producer.poll(0)

    def produce_raw(self, topic: str, value: bytes | None, *, key: str | bytes | None,
                    headers: list[tuple[str, str | bytes | None]]) -> None:
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, headers=headers)
                return
            except BufferError:
                self._producer.poll(0.1)

    def produce_sync(self, topic: str, messages: Iterable[tuple[str, ProtoMessage]],
                     timeout: float = 120.0) -> int:
        """Produce (key, message) pairs and wait until Kafka confirmed every one of them."""
        errors: list[KafkaError] = []

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                errors.append(err)

        count = 0
        for key, message in messages:
            self.produce(topic, message, key=key, on_delivery=on_delivery)
            count += 1
        self.flush(timeout)
        if errors:
            raise DeliveryError(f"{len(errors)} of {count} messages to {topic} not delivered: {errors[0]}")
        return count

    def poll(self, timeout: float = 0.0) -> int:
        return int(self._producer.poll(timeout))

    def flush(self, timeout: float = 120.0) -> None:
        remaining = self._producer.flush(timeout)
        if remaining:
            raise DeliveryError(f"{remaining} messages still unconfirmed after {timeout} s")

    def __len__(self) -> int:
        return len(self._producer)


@dataclass(frozen=True)
class Received(Generic[M]):
    """A decoded message with where it came from (for offsets, DLQ headers and logs)."""

    topic: str
    partition: int
    offset: int
    key: str | None
    value: M
    timestamp_ms: int


class DeadLetters:
    """Sends what cannot be decoded or validated to T.dlq with the reason in headers; never good data."""

    def __init__(self, producer: EventProducer) -> None:
        self._producer = producer

    def send(self, msg: Message, error: str) -> None:
        original = msg.headers() or []
        pairs = list(original.items()) if isinstance(original, dict) else list(original)
        self.send_record(msg.topic() or "unknown", msg.partition() or 0, msg.offset() or 0, msg.key(), msg.value(),
                         pairs, error)

    def send_record(self, topic: str, partition: int, offset: int, key: str | bytes | None, value: bytes | None,
                    headers: Sequence[tuple[str, str | bytes | None]], error: str) -> None:
        """Dead-letter one record, keeping its key, value and headers and adding where it came from and why."""
        all_headers: list[tuple[str, str | bytes | None]] = list(headers)
        all_headers += [
            ("dlq.source.topic", topic.encode()),
            ("dlq.source.partition", str(partition).encode()),
            ("dlq.source.offset", str(offset).encode()),
            ("dlq.error", error.encode()[:4000]),
        ]
        self._producer.produce_raw(topic + DLQ_SUFFIX, value, key=key, headers=all_headers)

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until the DLQ confirmed everything sent: only then may the originals count as consumed."""
        self._producer.flush(timeout)


class EventConsumer(Generic[M]):
    """Consumes one contract topic in batches; `commit` stores offsets only after the sink succeeded.

    Undecodable messages go to the DLQ as they are read (they are consumed once the DLQ confirmed).
    """

    def __init__(
        self, bootstrap_servers: str, *, group_id: str, topic: Topic, dead_letters: DeadLetters,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.topic = topic
        self._dead_letters = dead_letters
        config = {**CONSUMER_DEFAULTS, "bootstrap.servers": bootstrap_servers, "group.id": group_id,
                  "logger": LIBRDKAFKA_LOG}
        self._consumer = Consumer({**config, **(extra or {})})
        self._consumer.subscribe([topic.name])
        self.dead_lettered = 0

    def poll_batch(self, max_messages: int = 500, timeout: float = 0.5) -> list[Received[M]]:
        batch: list[Received[M]] = []
        dead: list[tuple[str, int, int]] = []
        for msg in self._consumer.consume(max_messages, timeout):
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    continue
                raise KafkaException(err)
            try:
                value = wire.decode(msg.value(), self.topic.message_type,
                                    wire.header_value(msg.headers(), wire.CONTENT_TYPE))
            except wire.WireError as exc:
                self._dead_letters.send(msg, str(exc))
                self.dead_lettered += 1
                dead.append((msg.topic() or self.topic.name, msg.partition() or 0, msg.offset() or 0))
                continue
            key = msg.key()
            batch.append(Received(
                topic=msg.topic() or self.topic.name, partition=msg.partition() or 0,
                offset=msg.offset() or 0, key=key.decode() if key else None,
                value=value,  # type: ignore[arg-type]  # decode() returns topic.message_type
                timestamp_ms=msg.timestamp()[1],
            ))
        if dead:
            self._dead_letters.flush()  # consumed only once the DLQ has them: nothing is lost on the way
            for topic, partition, offset in dead:
                self._store(topic, partition, offset)
        return batch

    def _store(self, topic: str, partition: int, offset: int) -> None:
        self._consumer.store_offsets(offsets=[TopicPartition(topic, partition, offset + 1)])

    def commit(self, batch: Sequence[Received[M]]) -> None:
        """Mark a batch done: call only after the sink has durably stored it."""
        last: dict[tuple[str, int], int] = {}
        for item in batch:
            last[(item.topic, item.partition)] = max(item.offset, last.get((item.topic, item.partition), -1))
        if last:
            self._consumer.store_offsets(
                offsets=[TopicPartition(t, p, o + 1) for (t, p), o in last.items()]
            )

    def close(self) -> None:
        # close() commits the stored offsets and leaves the group at once (no rebalance wait for others).
        self._consumer.close()


def admin(bootstrap_servers: str) -> AdminClient:
    config: dict[str, Any] = {"bootstrap.servers": bootstrap_servers, "logger": LIBRDKAFKA_LOG}
    return AdminClient(config)


def apply_topics(bootstrap_servers: str, topics: Sequence[Topic] = TOPICS, timeout: float = 30.0) -> list[str]:
    """Create every missing topic and its DLQ; returns the names created. Existing topics are left as is."""
    client = admin(bootstrap_servers)
    metadata = client.list_topics(timeout=timeout)
    brokers = len(metadata.brokers)
    replication = min(3, brokers)
    existing = set(metadata.topics)
    wanted: list[NewTopic] = []
    for t in topics:
        config = t.config()
        config["min.insync.replicas"] = str(min(2, replication))
        for name, partitions in ((t.name, t.partitions), (t.dlq, 1)):
            if name not in existing:
                wanted.append(NewTopic(name, num_partitions=partitions, replication_factor=replication,
                                       config=config))
    created: list[str] = []
    if not wanted:
        return created
    for name, future in client.create_topics(wanted, request_timeout=timeout).items():
        try:
            future.result()
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    return sorted(created)


def list_topics(bootstrap_servers: str, timeout: float = 30.0) -> dict[str, int]:
    metadata = admin(bootstrap_servers).list_topics(timeout=timeout)
    return {name: len(t.partitions) for name, t in metadata.topics.items() if not name.startswith("__")}


# The group coordinator is elsewhere or still loading its state: asking again soon answers.
_COORDINATOR_MOVING = frozenset({KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
                                 KafkaError.COORDINATOR_NOT_AVAILABLE})


def committed_offsets(bootstrap_servers: str, group: str, partitions: Iterable[tuple[str, int]],
                      timeout: float = 30.0) -> dict[tuple[str, int], int]:
    """The offsets `group` committed (the next record it reads) per (topic, partition); partitions with no
    commit are left out. Reads only: the consumer never joins the group. Retriable errors (the group's
    coordinator moving or still loading, e.g. on a broker just started) are retried until `timeout`."""
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": group, "enable.auto.commit": False,
                         "logger": LIBRDKAFKA_LOG})
    wanted = [TopicPartition(t, p) for t, p in partitions]
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                found = consumer.committed(wanted, timeout=max(1.0, deadline - time.monotonic()))
                break
            except KafkaException as exc:
                error = exc.args[0]
                if not (error.retriable() or error.code() in _COORDINATOR_MOVING) or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)  # back-off before asking the coordinator again (bounded by the deadline)
    finally:
        consumer.close()
    return {(tp.topic, tp.partition): tp.offset for tp in found if tp.offset >= 0}
