"""Faust's consumer handing batches (`callstream_core.faust_support.BatchConsumer`) with a partition paused by
the handler, as the KPI worker pauses partitions read ahead of the others: the partition read first is paused
and not read beyond what was in hand, the other is read to its end meanwhile, and once resumed every record of
both comes exactly once, in offset order. Real broker, real Faust app."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

import faust
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import NewTopic
from faust.types import TP, Message

from callstream_core.faust_support import BatchConsumer, faust_topic, make_app
from callstream_core.kafka import admin
from callstream_core.topics import Topic, topic

pytestmark = pytest.mark.integration

RECORDS_PER_PARTITION = 3000
MAX_EVENTS = 100


def test_a_paused_partition_waits_while_the_other_is_read_and_every_record_comes_once(kafka_bootstrap: str) -> None:
    raw = _topic_with_records(kafka_bootstrap, "pacing", 2, RECORDS_PER_PARTITION)
    name = raw.name

    app = make_app(f"pacing-{uuid.uuid4().hex[:6]}", kafka_bootstrap)
    delivered: dict[int, list[int]] = {0: [], 1: []}
    seen = {"paused": -1, "paused_with": -1, "resumed_with": -1, "in_hand_peak": 0}

    async def handle(messages: list[Message]) -> None:
        consumer = app.consumer
        assert isinstance(consumer, BatchConsumer)
        seen["in_hand_peak"] = max(seen["in_hand_peak"], *consumer._in_hand.values(), 0)
        for message in messages:
            delivered[message.partition].append(message.offset)
        if seen["paused"] < 0:  # the first batch: its partition (read first) waits until the other one is read
            seen["paused"] = paused = messages[0].partition
            seen["paused_with"] = len(delivered[paused])
            consumer.pause_partitions({TP(name, paused)})
        paused = seen["paused"]
        if seen["resumed_with"] < 0 and len(delivered[1 - paused]) == RECORDS_PER_PARTITION:
            seen["resumed_with"] = len(delivered[paused])
            consumer.resume_partitions({TP(name, paused)})

    app.batch_topic(faust_topic(app, raw), handle, max_events=MAX_EVENTS, within_s=0.1)

    _run_until(app, lambda: sum(map(len, delivered.values())) >= 2 * RECORDS_PER_PARTITION, 90)
    for partition in (0, 1):
        assert delivered[partition] == list(range(RECORDS_PER_PARTITION)), f"partition {partition}"
    # Paused, the partition gave only what was in hand: at most its cap plus one poll's records (the cap is
    # checked once a poll's records are buffered), far from the rest of its records.
    cap = BatchConsumer.IN_HAND_BATCHES * MAX_EVENTS + app.conf.broker_max_poll_records
    assert 0 < seen["paused_with"] <= seen["resumed_with"] <= cap, seen
    assert seen["in_hand_peak"] <= cap, seen


SHARED_PARTITIONS = 4
SHARED_RECORDS = 300
SHARED_READ = 150  # records of a partition handled before the next one's turn: its end (300) is never reached
SMALL_POLL = 10


def test_a_partition_holds_its_share_and_a_batch_that_cannot_grow_goes_at_once(kafka_bootstrap: str) -> None:
    """Four partitions read one at a time (the handler pauses all but one): each has in hand at most its share
    of the topic's two batches (a quarter: half a batch), so the one partition read cannot fill a batch, and
    each short batch is handed over as soon as no partition can add to it, not after `within_s` (two minutes
    here, past the test's deadline).

    A partition is read only to `SHARED_READ`, short of its end minus what it may hold: at its end a partition
    under its share can still grow a batch (new records may come), so that batch rightly waits `within_s`."""
    raw = _topic_with_records(kafka_bootstrap, "shares", SHARED_PARTITIONS, SHARED_RECORDS)
    name = raw.name

    app = make_app(f"shares-{uuid.uuid4().hex[:6]}", kafka_bootstrap, broker_max_poll_records=SMALL_POLL)
    delivered: dict[int, list[int]] = {p: [] for p in range(SHARED_PARTITIONS)}
    in_hand_peak = [0]
    reading: list[int] = []  # the one partition being read

    async def handle(messages: list[Message]) -> None:
        consumer = app.consumer
        assert isinstance(consumer, BatchConsumer)
        in_hand_peak[0] = max(in_hand_peak[0], *consumer._in_hand.values(), 0)
        for message in messages:
            delivered[message.partition].append(message.offset)
        if not reading:  # the first batch: its partition is read alone, the others wait their turn
            reading.append(messages[0].partition)
            consumer.pause_partitions({TP(name, p) for p in range(SHARED_PARTITIONS) if p != reading[0]})
        if len(delivered[reading[0]]) >= SHARED_READ:
            consumer.pause_partitions({TP(name, reading[0])})  # its turn is over
            left = [p for p in range(SHARED_PARTITIONS) if len(delivered[p]) < SHARED_READ]
            if left:
                reading[0] = left[0]
                consumer.resume_partitions({TP(name, left[0])})

    app.batch_topic(faust_topic(app, raw), handle, max_events=MAX_EVENTS, within_s=120)

    _run_until(app, lambda: all(len(offsets) >= SHARED_READ for offsets in delivered.values()), 60)
    # All within the deadline, short of `within_s`: every short batch went at once.
    for partition in range(SHARED_PARTITIONS):
        offsets = delivered[partition]
        assert len(offsets) >= SHARED_READ, f"partition {partition}: {len(offsets)} records"
        assert offsets == list(range(len(offsets))), f"partition {partition}"
    share = BatchConsumer.IN_HAND_BATCHES * MAX_EVENTS // SHARED_PARTITIONS
    # Taken when its turn ends: under SHARED_READ handled plus its share, and a poll in flight as it is paused.
    assert SHARED_READ + share + 2 * SMALL_POLL < SHARED_RECORDS  # no partition was read to its end
    assert in_hand_peak[0] <= share + SMALL_POLL, (in_hand_peak[0], share)


def _topic_with_records(bootstrap: str, stem: str, partitions: int, records: int) -> Topic:
    """A new topic of `partitions` partitions, each holding `records` records ("<partition>-<n>"), as a raw
    registry topic (the batch consumer hands its records over undecoded)."""
    name = f"{stem}-{uuid.uuid4().hex[:8]}"
    client_admin = admin(bootstrap)  # kept while the futures are awaited: its end cancels them
    for future in client_admin.create_topics([NewTopic(name, num_partitions=partitions,
                                                       replication_factor=1)]).values():
        future.result(30)
    producer = Producer({"bootstrap.servers": bootstrap})
    for partition in range(partitions):
        for n in range(records):
            producer.produce(name, value=f"{partition}-{n}".encode(), partition=partition)
            producer.poll(0)
    assert producer.flush(30) == 0
    contract = topic("cc.call-events.v1")
    return Topic(name, contract.key, contract.message_type, partitions, contract.retention_ms, "", contract.example)


def _run_until(app: faust.App, done: Callable[[], bool], deadline_s: float) -> None:
    async def run() -> None:
        await app.start()
        try:
            deadline = time.monotonic() + deadline_s
            while not done() and time.monotonic() < deadline:
                await asyncio.sleep(0.1)  # polling the handler's progress with a deadline
        finally:
            await app.stop()

    asyncio.run(run())
