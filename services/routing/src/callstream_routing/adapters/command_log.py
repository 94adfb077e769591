"""The routing command log on Kafka (cc.routing-commands.v1): every accepted command, in order, with the
clock it was applied at. On start the service replays it into a fresh core, so its state is rebuilt."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from callstream.routing.v1 import routing_pb2
from callstream_core import wire
from callstream_core.kafka import LIBRDKAFKA_LOG

TOPIC = "cc.routing-commands.v1"
log = logging.getLogger(__name__)


def read_log(bootstrap_servers: str, topic: str = TOPIC,
             timeout_s: float = 30.0) -> Iterator[routing_pb2.RoutingCommand]:
    """Every record of the log from the beginning up to its end at the time of the call."""
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": "routing-replay",
                         "enable.auto.commit": False, "logger": LIBRDKAFKA_LOG, "isolation.level": "read_committed"})
    try:
        partitions = consumer.list_topics(topic, timeout=timeout_s).topics[topic].partitions
        for partition in sorted(partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout_s)
            if high <= low:
                continue
            consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
            position = low
            while position < high:
                msg = consumer.poll(timeout_s)
                if msg is None:
                    raise TimeoutError(f"command log {topic}/{partition} stalled at {position} of {high}")
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        break
                    raise RuntimeError(str(err))
                position = (msg.offset() or 0) + 1
                try:
                    yield wire.decode(msg.value(), routing_pb2.RoutingCommand,
                                      wire.header_value(msg.headers(), wire.CONTENT_TYPE))
                except wire.WireError as exc:
                    # A record the router itself wrote cannot be undecodable unless corrupted: skip it loudly.
                    log.error("skipping command log record %s/%s: %s", partition, msg.offset(), exc)
    finally:
        consumer.close()
