"""The command log adapter on a real broker: a log that retention cut short is refused with a clear error, a
log of several partitions is refused, and a fenced writer fails every pending command instead of confirming."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import NewTopic

from callstream.routing.v1 import routing_pb2
from callstream_core.envelope import new_envelope
from callstream_core.kafka import EventProducer, admin
from callstream_routing.adapters.command_log import (
    CommandLogReader,
    LeadershipLost,
    LogTruncated,
    TransactionalLogWriter,
)

pytestmark = pytest.mark.integration


def _topic(bootstrap: str, partitions: int = 1) -> str:
    name = f"test-command-log-{uuid.uuid4().hex[:8]}"
    client = admin(bootstrap)  # kept referenced until the futures resolve
    for future in client.create_topics([NewTopic(name, num_partitions=partitions,
                                                 replication_factor=1)]).values():
        future.result(30)
    return name


def _cancel(call_id: str) -> routing_pb2.RoutingCommand:
    from datetime import UTC, datetime

    record = routing_pb2.RoutingCommand(envelope=new_envelope("test", datetime.now(UTC)))
    record.cancel_call.command_id = f"cancel-{call_id}"
    record.cancel_call.call_id = call_id
    return record


def test_a_log_cut_by_retention_is_refused(kafka_bootstrap: str) -> None:
    topic = _topic(kafka_bootstrap)
    EventProducer(kafka_bootstrap, client_id="test").produce_sync(
        topic, [("router", _cancel(f"c{i}")) for i in range(5)])
    client = admin(kafka_bootstrap)
    for future in client.delete_records([TopicPartition(topic, 0, 2)]).values():
        future.result(30)
    with pytest.raises(LogTruncated, match=r"starts at offset 2 .* no snapshot"):
        CommandLogReader(kafka_bootstrap, topic)
    with pytest.raises(LogTruncated, match="needs it from 1"):
        CommandLogReader(kafka_bootstrap, topic, start=1)
    reader = CommandLogReader(kafka_bootstrap, topic, start=3, commands=3)  # a snapshot covering 0..2
    assert [e.command.cancel_call.call_id for e in reader.read_to_end()] == ["c3", "c4"]
    assert reader.commands == 5 and reader.position == 5
    reader.close()


def test_a_log_of_several_partitions_is_refused(kafka_bootstrap: str) -> None:
    with pytest.raises(RuntimeError, match="has 2 partitions; a router's log has exactly one"):
        CommandLogReader(kafka_bootstrap, _topic(kafka_bootstrap, partitions=2))


def test_a_fenced_writer_confirms_nothing_more(kafka_bootstrap: str) -> None:
    topic = _topic(kafka_bootstrap)

    def writer(instance: str, lost: list[LeadershipLost]) -> TransactionalLogWriter:
        return TransactionalLogWriter(kafka_bootstrap, transactional_id=f"routing-leader-{topic}", log_topic=topic,
                                      instance_id=instance, heartbeat_s=0.2, on_lost=lost.append)

    async def scenario() -> tuple[int, str, list[LeadershipLost], int]:
        old_lost: list[LeadershipLost] = []
        old = writer("old", old_lost)
        await asyncio.to_thread(old.open)
        old.start(0)
        first = await asyncio.wait_for(old.submit(topic, _cancel("a"), key="router"), 30)
        new = writer("new", [])
        await asyncio.to_thread(new.open)  # fences `old`
        with pytest.raises(LeadershipLost) as refused:
            await asyncio.wait_for(old.submit(topic, _cancel("b"), key="router"), 30)
        new.start(first + 1)
        second = await asyncio.wait_for(new.submit(topic, _cancel("c"), key="router"), 30)
        await asyncio.to_thread(old.close, resign=True)
        await asyncio.to_thread(new.close, resign=False)
        return first, str(refused.value), old_lost, second

    first, refused, old_lost, second = asyncio.run(scenario())
    assert "taken over" in refused and len(old_lost) == 1
    reader = CommandLogReader(kafka_bootstrap, topic)
    calls = [e.command.cancel_call.call_id for e in reader.read_to_end() if e.heartbeat is None]
    reader.close()
    assert calls == ["a", "c"], "the fenced writer's command must not be in the log"
    assert second > first
