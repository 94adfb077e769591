"""The local broker itself (callstream_devtools.local_kafka) and the two Python clients against it.

- the broker starts, answers, and stops without leaving a process (also when its parent is killed);
- confluent-kafka (acks=all, idempotence, murmur2_random) -> aiokafka 0.14 consumer in a group with commits;
- aiokafka's producer puts every key on the same partition as confluent-kafka's (murmur2 agreement).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition as AioTopicPartition
from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from callstream_devtools.local_kafka import LocalKafka, main

pytestmark = pytest.mark.integration

PARTITIONS = 6
KEYS = [f"call-{i:03d}" for i in range(48)]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) is gone for our purpose.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ")[1].startswith("Z"))


def _wait_gone(pid: int, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.1)  # polling another process for exit, with a deadline
    return False


def _create_topic(bootstrap: str, partitions: int) -> str:
    name = f"lk-{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)]).values():
        future.result(30)
    return name


def test_cli_starts_in_background_and_stops(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data_dir = tmp_path / "broker"
    assert main(["start", "--data-dir", str(data_dir)]) == 0
    pid = int((data_dir / "broker.pid").read_text())
    try:
        assert "ready at 127.0.0.1:" in capsys.readouterr().out
        assert main(["status", "--data-dir", str(data_dir)]) == 0
        bootstrap = LocalKafka(data_dir).bootstrap_servers  # the ports of the running broker, read back
        metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
        assert list(metadata.brokers) == [1]
        assert "PLAINTEXT://127.0.0.1:" in (data_dir / "server.properties").read_text()
        assert (data_dir / "logs" / "server.log").stat().st_size > 0, "the broker logs to its data dir"
    finally:
        assert main(["stop", "--data-dir", str(data_dir)]) == 0
    assert _wait_gone(pid)
    assert not (data_dir / "broker.pid").exists()
    assert main(["status", "--data-dir", str(data_dir)]) == 1


def test_broker_dies_with_a_killed_parent(tmp_path: Path) -> None:
    """A test session killed with SIGKILL (no teardown) leaves no broker behind."""
    data_dir = tmp_path / "orphan"
    script = ("import sys, threading; from pathlib import Path\n"
              "from callstream_devtools.local_kafka import LocalKafka\n"
              f"b = LocalKafka(Path({str(data_dir)!r})).start(); print(b.process.pid, flush=True)\n"
              "threading.Event().wait()\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline()  # blocks until the broker is ready (the child's own deadline: 90 s)
        assert line.strip().isdigit(), f"the child did not start a broker: {line!r}"
        broker_pid = int(line)
        assert _alive(broker_pid)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
    assert _wait_gone(broker_pid), "the broker outlived the process that started it"


def test_confluent_to_aiokafka_group_commit_and_murmur2_agreement(kafka_bootstrap: str) -> None:
    name = _create_topic(kafka_bootstrap, PARTITIONS)

    # confluent-kafka with the platform's delivery settings; the partitions come from the delivery reports.
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "acks": "all", "enable.idempotence": True,
                         "partitioner": "murmur2_random", "linger.ms": 5})
    by_confluent: dict[str, int] = {}
    errors: list[str] = []

    def delivered(err: object, msg: object) -> None:
        if err is not None:
            errors.append(str(err))
        else:
            by_confluent[msg.key().decode()] = msg.partition()  # type: ignore[attr-defined]

    for key in KEYS:
        producer.produce(name, value=f"from-confluent:{key}".encode(), key=key.encode(), on_delivery=delivered)
    assert producer.flush(30) == 0
    assert not errors
    assert len(by_confluent) == len(KEYS)
    assert len(set(by_confluent.values())) > 1, "keys should spread over the partitions"

    group = f"g-{uuid.uuid4().hex[:8]}"

    async def consume_and_commit() -> dict[str, int]:
        consumer = AIOKafkaConsumer(name, bootstrap_servers=kafka_bootstrap, group_id=group,
                                    auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        seen: dict[str, int] = {}
        try:
            deadline = time.monotonic() + 30
            while len(seen) < len(KEYS) and time.monotonic() < deadline:
                for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                    for record in records:
                        assert record.key is not None and record.value is not None
                        assert record.value == b"from-confluent:" + record.key
                        seen[record.key.decode()] = tp.partition
            await consumer.commit()
            committed = {p: await consumer.committed(AioTopicPartition(name, p)) for p in range(PARTITIONS)}
            assert sum(c or 0 for c in committed.values()) == len(KEYS)
        finally:
            await consumer.stop()
        return seen

    async def produce_with_aiokafka() -> dict[str, int]:
        aio = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True)
        await aio.start()
        try:
            return {key: (await aio.send_and_wait(name, b"from-aiokafka", key=key.encode())).partition
                    for key in KEYS}
        finally:
            await aio.stop()

    seen = asyncio.run(consume_and_commit())
    assert seen == by_confluent

    # The group's commits are visible to another client: confluent-kafka's admin API reads them back.
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    from confluent_kafka import ConsumerGroupTopicPartitions

    offsets = admin.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group, [TopicPartition(name, p) for p in range(PARTITIONS)])])[group].result(30)
    assert sum(tp.offset for tp in offsets.topic_partitions) == len(KEYS)

    by_aiokafka = asyncio.run(produce_with_aiokafka())
    assert by_aiokafka == by_confluent, "aiokafka and confluent-kafka must place every key on the same partition"
