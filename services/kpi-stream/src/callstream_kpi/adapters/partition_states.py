"""The state topic (cc.kpi-partition-state.v1): each KPI worker publishes the real-time state of the partitions it
owns, and reads every partition's newest state, from the start of the compacted topic and outside the consumer
group (every worker needs all of them, not a share)."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from callstream.kpi.v1 import kpi_events_pb2
from callstream_core import wire
from callstream_core.kafka import LIBRDKAFKA_LOG, EventProducer
from callstream_core.topics import KPI_PARTITION_STATE, topic
from callstream_kpi.domain.partition_state import state_key

log = logging.getLogger(__name__)



class PartitionStateLog:
    def __init__(self, bootstrap_servers: str, *, topic_prefix: str, client_id: str) -> None:
        registered = topic(KPI_PARTITION_STATE)
        self.topic = topic_prefix + KPI_PARTITION_STATE
        # A state carries a partition's calls of the last hour, published whole every tick: binary protobuf (half
        # the bytes of JSON; the topic is internal to kpi-stream), records up to the topic's own size limit.
        self._producer = EventProducer(bootstrap_servers, client_id=client_id, wire_format="protobuf",
                                       extra={"message.max.bytes": registered.max_message_bytes})
        self._consumer = Consumer({
            "bootstrap.servers": bootstrap_servers, "logger": LIBRDKAFKA_LOG,
            # No group: offsets are never committed, every start reads the compacted topic from its beginning.
            "group.id": f"kpi-state-reader-{uuid.uuid4()}", "enable.auto.commit": False,
            "enable.partition.eof": False,
        })
        partitions = range(registered.partitions)
        self._consumer.assign([TopicPartition(self.topic, p, 0) for p in partitions])
        self._partitions = list(partitions)

    def publish(self, states: Iterable[kpi_events_pb2.PartitionState], *, wait: bool = False) -> None:
        """Queue the states (keyed by source partition); `wait`: return only once Kafka has them all."""
        for state in states:
            self._producer.produce(self.topic, state, key=state_key(state.topic, state.partition))
        self._producer.poll(0)
        if wait:
            self._producer.flush(30.0)

    def read(self, timeout_s: float = 0.0) -> list[kpi_events_pb2.PartitionState]:
        """The states published since the last read (none waited for beyond `timeout_s`)."""
        out: list[kpi_events_pb2.PartitionState] = []
        while True:
            messages = self._consumer.consume(500, timeout_s)
            for msg in messages:
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                        raise KafkaException(err)
                    log.warning("state topic: %s", err)
                    continue
                try:
                    out.append(wire.decode(msg.value(), kpi_events_pb2.PartitionState,
                                           wire.header_value(msg.headers(), wire.CONTENT_TYPE)))
                except wire.WireError as exc:  # a state nobody can use: skipped, the owner's next one replaces it
                    log.warning("state topic %s[%s]@%s: %s", msg.topic(), msg.partition(), msg.offset(), exc)
            if not messages:
                return out
            timeout_s = 0.0

    def read_to_end(self, timeout_s: float = 30.0) -> list[kpi_events_pb2.PartitionState]:
        """Every state up to the topic's end as of now (a start, a rebalance: the previous owners' last states)."""
        deadline = time.monotonic() + timeout_s
        ends = {p: self._end_offset(p, deadline) for p in self._partitions}
        out: list[kpi_events_pb2.PartitionState] = []
        while True:
            out += self.read(0.2)
            positions = {tp.partition: tp.offset for tp in self._consumer.position(
                [TopicPartition(self.topic, p) for p in self._partitions])}
            if all(end <= 0 or positions.get(p, -1) >= end for p, end in ends.items()):
                return out
            if time.monotonic() > deadline:
                raise TimeoutError(f"the state topic {self.topic} was not read to its end within {timeout_s} s")

    # A topic just created, or a broker electing leaders, answers "not leader" / "leader not available" for a
    # moment: retried until the deadline, as librdkafka does for its own requests.
    TRANSIENT = frozenset({KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
                           KafkaError._TIMED_OUT, KafkaError.REQUEST_TIMED_OUT})
    RETRY_PAUSE_S = 0.2

    def _end_offset(self, partition: int, deadline: float) -> int:
        while True:
            try:
                return int(self._consumer.get_watermark_offsets(
                    TopicPartition(self.topic, partition), timeout=max(0.1, deadline - time.monotonic()))[1])
            except KafkaException as exc:
                error = exc.args[0]
                transient = isinstance(error, KafkaError) and error.code() in self.TRANSIENT
                if not transient or time.monotonic() > deadline:
                    raise RuntimeError(f"cannot read the state topic {self.topic} ({exc}): is it created? "
                                       "`callstream topics apply` creates every topic of the registry") from exc
                time.sleep(self.RETRY_PAUSE_S)  # a back-off between retries, not a synchronisation

    def close(self) -> None:
        self._producer.flush(30.0)
        self._consumer.close()
