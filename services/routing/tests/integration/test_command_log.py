"""The command log adapter on a real broker: a log that retention cut short is refused with a clear error, a
log of several partitions is refused, and a fenced writer fails every pending command instead of confirming; the
writer's two producers take turns without reordering the log, and both are fenced."""

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


def test_the_two_producers_take_turns_in_order_and_both_are_fenced(kafka_bootstrap: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Commits every 50 ms: records written across many hand-overs keep the submit order, every transaction
    commits (a failed background commit would fail the next submit), and a new leader fences the old one while
    the turn is with its second producer."""
    from callstream_routing.adapters import command_log

    monkeypatch.setattr(command_log, "COMMIT_EVERY_S", 0.05)
    topic = _topic(kafka_bootstrap)

    def writer(instance: str) -> TransactionalLogWriter:
        return TransactionalLogWriter(kafka_bootstrap, transactional_id=f"routing-leader-{topic}", log_topic=topic,
                                      instance_id=instance, heartbeat_s=0.2)

    async def scenario() -> tuple[list[int], int, str]:
        old = writer("old")
        await asyncio.to_thread(old.open)
        old.start(0)
        offsets = []
        for i in range(40):
            offsets.append(await asyncio.wait_for(old.submit(topic, _cancel(f"a{i}"), key="router"), 30))
            await asyncio.sleep(0.01)  # pacing, so that transactions fall due between the records
        turns = len(old._commits)  # the producers that committed at least once
        # Until the turn is with the second producer (the writer's own field; only this test looks at it).
        deadline = asyncio.get_running_loop().time() + 30
        while old._producer is not old._producers[1]:
            assert asyncio.get_running_loop().time() < deadline, "the turn never passed to the second producer"
            await old.submit(topic, _cancel("filler"), key="router")
            await asyncio.sleep(0.01)
        new = writer("new")
        await asyncio.to_thread(new.open)
        with pytest.raises(LeadershipLost) as refused:
            await asyncio.wait_for(old.submit(topic, _cancel("zombie"), key="router"), 30)
        await asyncio.to_thread(old.close, resign=False)
        await asyncio.to_thread(new.close, resign=False)
        return offsets, turns, str(refused.value)

    offsets, turns, refused = asyncio.run(scenario())
    assert offsets == sorted(offsets) and len(set(offsets)) == 40
    assert turns == 2, "both producers must have committed transactions"
    assert "taken over" in refused
    reader = CommandLogReader(kafka_bootstrap, topic)
    calls = [e.command.cancel_call.call_id for e in reader.read_to_end() if e.heartbeat is None]
    reader.close()
    assert [c for c in calls if c != "filler"] == [f"a{i}" for i in range(40)]
