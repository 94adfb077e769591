"""Baselines for later ratios: raw confluent-kafka produce rate and raw aiokafka consume rate.

Small messages (about 200 bytes, like a call event) on a single-node local broker; the producer uses
the platform's delivery settings (acks=all, idempotence), so adapter figures compare like with like.
Uses KAFKA_BOOTSTRAP_SERVERS when set, else starts a local broker. Run by `make bench`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import time
import uuid
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

from aiokafka import AIOKafkaConsumer
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from bench.common import print_figures
from callstream_core.kafka import PRODUCER_DEFAULTS
from callstream_devtools.local_kafka import LocalKafka

MESSAGES = 200_000
PAYLOAD = b'{"envelope":{"eventId":"%s","occurredAt":"2026-11-02T09:30:12.250Z","source":"bench"},' \
          b'"callId":"pbx1-1762075812.42","answered":{"agentId":"agent-0042","queueId":"billing"}}'


def produce(bootstrap: str, topic: str, count: int, records: Sequence[tuple[bytes, bytes]] = ()) -> float:
    """Messages/s of plain Producer.produce + flush; `records` (value, key) pairs, cycled, instead of PAYLOAD."""
    producer = Producer({**PRODUCER_DEFAULTS, "bootstrap.servers": bootstrap})
    value = PAYLOAD % b"00000000-0000-0000-0000-000000000000"
    start = time.perf_counter()
    for i in range(count):
        if records:
            value, key = records[i % len(records)]
        else:
            key = b"call-%d" % (i % 5000)
        while True:
            try:
                producer.produce(topic, value=value, key=key)
                break
            except BufferError:
                producer.poll(0.05)
        if i % 1000 == 0:
            producer.poll(0)
    if producer.flush(120):
        raise RuntimeError("messages left unconfirmed")
    return count / (time.perf_counter() - start)


async def consume(bootstrap: str, topic: str, count: int) -> float:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"bench-{uuid.uuid4()}",
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        seen = 0
        start = time.perf_counter()
        while seen < count:
            batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
            seen += sum(len(records) for records in batches.values())
        await consumer.commit()
        return seen / (time.perf_counter() - start)
    finally:
        await consumer.stop()


def measure(bootstrap: str, count: int = MESSAGES) -> dict[str, float]:
    topic = f"bench-baseline-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=6, replication_factor=1)])[topic].result(30)
    produced = produce(bootstrap, topic, count)
    consumed = asyncio.run(consume(bootstrap, topic, count))
    admin.delete_topics([topic])[topic].result(30)
    return {"confluent_produce_msgs_per_s": produced, "aiokafka_consume_msgs_per_s": consumed}


def bootstrap_servers(stack: ExitStack) -> str:
    """The broker to measure against: KAFKA_BOOTSTRAP_SERVERS or a local one for this run."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        return os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="callstream-bench-")))
    return stack.enter_context(LocalKafka(tmp)).bootstrap_servers


def main() -> None:
    # A fresh broker elects its group coordinator while the first consumer joins; aiokafka logs each retry.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    with ExitStack() as stack:
        figures = measure(bootstrap_servers(stack))
    print_figures(f"Kafka baseline: {MESSAGES:,} messages of ~{len(PAYLOAD)} bytes, 6 partitions", figures)


if __name__ == "__main__":
    main()
