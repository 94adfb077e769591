"""The core Kafka clients against a real broker: delivery settings, murmur2 agreement, DLQ, offsets."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from confluent_kafka import Consumer
from confluent_kafka.admin import NewTopic

from callstream.call.v1 import call_events_pb2
from callstream_core import wire
from callstream_core.envelope import new_envelope
from callstream_core.kafka import DeadLetters, EventConsumer, EventProducer, admin, apply_topics, list_topics
from callstream_core.topics import TOPICS, Topic, topic

pytestmark = pytest.mark.integration


def _event(call_id: str) -> call_events_pb2.CallEvent:
    event = call_events_pb2.CallEvent(call_id=call_id, envelope=new_envelope("test", datetime.now(UTC)))
    event.answered.agent_id = "agent-1"
    return event


def _make_topic(bootstrap: str, partitions: int, *, with_dlq: bool = False) -> str:
    name = f"test-{uuid.uuid4().hex[:10]}"
    client = admin(bootstrap)  # keep the handle alive until the futures resolve
    wanted = [NewTopic(name, num_partitions=partitions, replication_factor=1)]
    if with_dlq:
        wanted.append(NewTopic(name + ".dlq", num_partitions=1, replication_factor=1))
    for future in client.create_topics(wanted).values():
        future.result(30)
    return name


def test_topics_apply_is_idempotent(kafka_bootstrap: str) -> None:
    apply_topics(kafka_bootstrap)
    assert apply_topics(kafka_bootstrap) == []
    existing = list_topics(kafka_bootstrap)
    for t in TOPICS:
        assert existing[t.name] == t.partitions
        assert existing[t.dlq] == 1


def test_confluent_and_aiokafka_agree_on_partitions(kafka_bootstrap: str) -> None:
    name = _make_topic(kafka_bootstrap, 6)
    keys = [f"call-{i}" for i in range(40)]
    producer = EventProducer(kafka_bootstrap, client_id="test")
    producer.produce_sync(name, [(k, _event(k)) for k in keys])

    async def via_aiokafka() -> dict[str, int]:
        placed: dict[str, int] = {}
        aio = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True)
        await aio.start()
        try:
            for k in keys:
                meta = await aio.send_and_wait(name, b"x", key=k.encode())
                placed[k] = meta.partition
        finally:
            await aio.stop()
        return placed

    async def read_confluent_placement() -> dict[str, int]:
        consumer = AIOKafkaConsumer(name, bootstrap_servers=kafka_bootstrap, group_id=f"g-{uuid.uuid4()}",
                                    auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        placed: dict[str, int] = {}
        deadline = time.monotonic() + 30
        try:
            while len(placed) < len(keys) and time.monotonic() < deadline:
                for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                    for record in records:
                        assert record.key is not None
                        decoded = wire.decode(record.value, call_events_pb2.CallEvent,
                                              wire.header_value(list(record.headers), wire.CONTENT_TYPE))
                        placed.setdefault(decoded.call_id, tp.partition)
        finally:
            await consumer.stop()
        return placed

    from_confluent = asyncio.run(read_confluent_placement())
    from_aiokafka = asyncio.run(via_aiokafka())
    assert len(from_confluent) == len(keys)
    assert from_confluent == from_aiokafka
    assert len(set(from_confluent.values())) > 1, "keys should spread over partitions"


def test_bad_messages_go_to_the_dlq_and_offsets_follow_the_sink(kafka_bootstrap: str) -> None:
    name = _make_topic(kafka_bootstrap, 1, with_dlq=True)
    contract = topic("cc.call-events.v1")
    test_topic = Topic(name, contract.key, contract.message_type, 1, contract.retention_ms, "", contract.example)
    producer = EventProducer(kafka_bootstrap, client_id="test")
    producer.produce_sync(name, [("c-1", _event("c-1"))])
    producer.produce_raw(name, b'{"callIdd": "typo"}', key=b"c-2", headers=[])
    producer.produce_sync(name, [("c-3", _event("c-3"))])
    group = f"g-{uuid.uuid4()}"

    consumer: EventConsumer[call_events_pb2.CallEvent] = EventConsumer(
        kafka_bootstrap, group_id=group, topic=test_topic, dead_letters=DeadLetters(producer))
    got: list[str] = []
    deadline = time.monotonic() + 30
    while len(got) < 2 and time.monotonic() < deadline:
        batch = consumer.poll_batch(timeout=0.5)
        got += [r.value.call_id for r in batch]
        if batch and batch[0].value.call_id == "c-1":
            consumer.commit(batch[:1])  # the "sink" stored only c-1
    producer.flush()
    consumer.close()
    assert got == ["c-1", "c-3"]
    assert consumer.dead_lettered == 1

    dlq = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": f"d-{uuid.uuid4()}",
                    "auto.offset.reset": "earliest"})
    dlq.subscribe([name + ".dlq"])
    deadline = time.monotonic() + 30
    record = None
    while record is None and time.monotonic() < deadline:
        record = dlq.poll(0.5)
    dlq.close()
    assert record is not None and record.value() == b'{"callIdd": "typo"}'
    headers = dict(record.headers() or [])
    assert headers["dlq.source.topic"] == name.encode()
    assert headers["dlq.source.offset"] == b"1"
    assert b"callIdd" in headers["dlq.error"]

    # A restarted consumer resumes after what the sink confirmed (and the DLQ'd message): c-3 again.
    again: EventConsumer[call_events_pb2.CallEvent] = EventConsumer(
        kafka_bootstrap, group_id=group, topic=test_topic, dead_letters=DeadLetters(producer))
    replayed: list[str] = []
    deadline = time.monotonic() + 30
    while not replayed and time.monotonic() < deadline:
        replayed = [r.value.call_id for r in again.poll_batch(timeout=0.5)]
    again.close()
    assert replayed == ["c-3"]
