"""faust-streaming against the local broker's Kafka version: one agent consumes a topic and commits.

Plain `faust.App` (not callstream_core.faust_support) so this checks Faust itself: a break here after a
Kafka or Faust upgrade is a compatibility problem, not ours.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import faust
import pytest
from confluent_kafka import ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

pytestmark = pytest.mark.integration

PARTITIONS = 3
MESSAGES = 30


def _committed(admin: AdminClient, group: str, topic: str) -> int:
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(PARTITIONS)])
    result = admin.list_consumer_group_offsets([request])[group].result(10)
    return sum(max(tp.offset, 0) for tp in result.topic_partitions)


def test_faust_agent_consumes_and_commits(kafka_bootstrap: str) -> None:
    name = f"faust-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    for future in admin.create_topics([NewTopic(name, num_partitions=PARTITIONS, replication_factor=1)]).values():
        future.result(30)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "acks": "all", "enable.idempotence": True,
                         "partitioner": "murmur2_random"})
    placed: set[int] = set()
    for i in range(MESSAGES):
        producer.produce(name, value=b"v-%d" % i, key=b"k-%d" % (i % 7),
                         on_delivery=lambda err, msg: placed.add(msg.partition()) if err is None else None)
    assert producer.flush(30) == 0

    app_id = f"faust-compat-{uuid.uuid4().hex[:6]}"  # also the consumer group
    app = faust.App(
        app_id,
        broker=f"kafka://{kafka_bootstrap}",
        store="memory://",
        topic_partitions=PARTITIONS,
        web_enabled=False,  # no web server on port 6066 in a test
        topic_disable_leader=True,  # no `<app>-__assignor-__leader` topic (auto-create is off on our broker)
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=0.5,
    )
    topic = app.topic(name, key_serializer="raw", value_serializer="raw", partitions=PARTITIONS)
    received: list[tuple[int, bytes]] = []

    @app.agent(topic, concurrency=1)
    async def collect(stream):  # type: ignore[no-untyped-def]
        async for event in stream.events():
            received.append((event.message.partition, event.value))

    async def run() -> int:
        await app.start()
        try:
            deadline = time.monotonic() + 60
            committed = 0
            while time.monotonic() < deadline:
                if len(received) >= MESSAGES:
                    committed = await asyncio.to_thread(_committed, admin, app_id, name)
                    if committed >= MESSAGES:
                        break
                await asyncio.sleep(0.2)  # polling the agent's progress and the group's commits, with a deadline
            return committed
        finally:
            await app.stop()

    committed = asyncio.run(run())
    assert sorted(v for _, v in received) == sorted(b"v-%d" % i for i in range(MESSAGES))
    assert len(placed) > 1
    assert {p for p, _ in received} == placed, "every partition with data was assigned to the agent"
    assert committed == MESSAGES, "Faust committed every consumed offset"
