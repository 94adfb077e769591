"""The smoke path with real parts: an event produced by the core producer, consumed by a Faust agent,
written to ClickHouse through chdb://, read back. A duplicate and a bad message ride along: the duplicate
is stored once, the bad message lands in the DLQ, nothing is lost."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime

import pytest
from clickhouse_connect.driver.client import Client
from confluent_kafka.admin import NewTopic
from faust.types import Message

from callstream.call.v1 import call_events_pb2
from callstream_core.envelope import new_envelope
from callstream_core.faust_support import decode_events, faust_topic, make_app
from callstream_core.kafka import DeadLetters, EventProducer, admin
from callstream_core.topics import Topic, topic

pytestmark = pytest.mark.integration


def test_event_reaches_clickhouse_through_faust(kafka_bootstrap: str, clickhouse: Client) -> None:
    contract = topic("cc.call-events.v1")
    name = f"smoke-{uuid.uuid4().hex[:8]}"
    client_admin = admin(kafka_bootstrap)
    for future in client_admin.create_topics([NewTopic(name, num_partitions=3, replication_factor=1),
                                              NewTopic(name + ".dlq", num_partitions=1, replication_factor=1)
                                              ]).values():
        future.result(30)
    smoke_topic = Topic(name, contract.key, contract.message_type, 3, contract.retention_ms, "", contract.example)

    clickhouse.command(
        "CREATE TABLE smoke_events (event_id String, call_id String, occurred_at DateTime64(3, 'UTC'), "
        "agent_id String) ENGINE = ReplacingMergeTree ORDER BY (call_id, event_id) "
        "SETTINGS non_replicated_deduplication_window = 1000")

    producer = EventProducer(kafka_bootstrap, client_id="smoke")
    at = datetime(2026, 11, 2, 9, 30, 12, 250000, tzinfo=UTC)
    event = call_events_pb2.CallEvent(call_id="call-42", envelope=new_envelope("smoke", at))
    event.answered.agent_id = "agent-7"
    producer.produce_sync(name, [("call-42", event), ("call-42", event)])  # at-least-once: a repeat
    producer.produce_raw(name, b"not json", key=b"call-43", headers=[])
    producer.flush()

    dead_letters = DeadLetters(producer)
    app = make_app(f"smoke-{uuid.uuid4().hex[:6]}", kafka_bootstrap)
    batches_stored = []

    async def store(messages: list[Message]) -> None:
        received = decode_events(messages, smoke_topic, dead_letters)
        rows = [[r.value.envelope.event_id, r.value.call_id, r.value.envelope.occurred_at.ToDatetime(tzinfo=UTC),
                 r.value.answered.agent_id] for r in received]
        if rows:
            token = ",".join(f"{r.partition}:{r.offset}" for r in received)
            await asyncio.to_thread(clickhouse.insert, "smoke_events", rows,
                                    column_names=["event_id", "call_id", "occurred_at", "agent_id"],
                                    settings={"insert_deduplication_token": token})
        batches_stored.append(len(rows))

    app.batch_topic(faust_topic(app, smoke_topic), store, max_events=100, within_s=0.3)

    async def run() -> list[tuple[str, str, datetime, str]]:
        await app.start()
        try:
            deadline = time.monotonic() + 60
            rows: list[tuple[str, str, datetime, str]] = []
            while time.monotonic() < deadline:
                rows = clickhouse.query("SELECT event_id, call_id, occurred_at, agent_id FROM smoke_events FINAL"
                                        ).result_rows
                if rows and sum(batches_stored) >= 2:
                    break
                await asyncio.sleep(0.2)  # polling the sink with a deadline
            return rows
        finally:
            await app.stop()

    rows = asyncio.run(run())
    producer.flush()
    # clickhouse-connect returns DateTime64(3, 'UTC') as naive UTC datetimes.
    assert rows == [(event.envelope.event_id, "call-42", at.replace(tzinfo=None), "agent-7")]
    assert sum(batches_stored) == 2, "the repeat was consumed too (and deduplicated by the table)"
