"""The routing command log on Kafka (one single-partition topic per router, i.e. per partition of queues): every
accepted command in order with the clock it was applied at, and the leader's heartbeats.

Reading is `read_committed`: a router (starting, or a hot standby) only ever sees what a leader committed.
Writing is `TransactionalLogWriter`, the leader's only producer: a transactional producer whose
`transactional.id` is the same for every router of the log, so the `init_transactions()` of a new leader fences
the old one. A fenced (zombie) leader cannot commit anything any more: its pending commands fail with
`LeadershipLost` instead of being answered, so no answer is ever given that the new leader does not know of.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from google.protobuf.message import Message as ProtoMessage

from callstream.routing.v1 import routing_pb2
from callstream_core import wire
from callstream_core.envelope import new_envelope
from callstream_core.kafka import LIBRDKAFKA_LOG, PRODUCER_DEFAULTS

TOPIC = "cc.routing-commands.v1"
# Room for a snapshot record (the topic allows 64 MiB, see the topic registry).
MAX_RECORD_BYTES = 64 * 1024 * 1024
log = logging.getLogger(__name__)


class LogTruncated(RuntimeError):
    """Records the state needs were deleted by retention: the state cannot be rebuilt from what is left."""


class LeadershipLost(RuntimeError):
    """Another router took over this command log (this one was fenced) or the log cannot be written: this router
    must stop writing and serving."""


# -- reading -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RawRecord:
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, str | bytes | None] | list[tuple[str, str | bytes | None]] | None


class PartitionReader:
    """Partition 0 of a single-partition topic from an offset on, committed records only, no consumer group."""

    def __init__(self, bootstrap_servers: str, topic: str, *, start: int | None, timeout_s: float = 30.0) -> None:
        self.topic = topic
        self.timeout_s = timeout_s
        self._consumer = Consumer({
            "bootstrap.servers": bootstrap_servers, "logger": LIBRDKAFKA_LOG,
            # Offsets are ours (the snapshot's next_offset), never a group's: nothing is committed.
            "group.id": f"routing-reader-{topic}", "enable.auto.commit": False, "enable.auto.offset.store": False,
            # Only what a leader committed: an aborted (fenced) leader's records are never applied.
            "isolation.level": "read_committed",
            # The end of the log is where a replay stops: librdkafka tells it by an EOF event.
            "enable.partition.eof": True,
            # Snapshot records are several MB: fetch them whole.
            "receive.message.max.bytes": MAX_RECORD_BYTES + 1024 * 1024,
        })
        metadata = self._consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
        if metadata is None or metadata.error is not None:
            self._consumer.close()
            raise RuntimeError(f"topic {topic} does not exist (create it: `callstream topics apply`)")
        if len(metadata.partitions) != 1:
            self._consumer.close()
            raise RuntimeError(f"{topic} has {len(metadata.partitions)} partitions; a router's log has exactly one")
        low, _high = self._consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=timeout_s)
        if start is not None and start < low:
            self._consumer.close()
            raise LogTruncated(f"{topic} starts at offset {low} but the state needs it from {start}")
        self.low = low
        self.position = low if start is None else start
        self._at_end = False
        self._consumer.assign([TopicPartition(topic, 0, self.position)])

    def poll(self, timeout_s: float, max_records: int = 1000) -> list[RawRecord]:
        records: list[RawRecord] = []
        for msg in self._consumer.consume(max_records, timeout_s):
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    # The EOF event carries the end offset (past any transaction markers).
                    self.position = max(self.position, msg.offset() or 0)
                    self._at_end = True
                    continue
                raise KafkaException(err)
            self._at_end = False
            offset = msg.offset() or 0
            self.position = offset + 1
            records.append(RawRecord(offset, msg.key(), msg.value(), msg.headers()))
        return records

    def end_offset(self) -> int:
        """The offset after the last committed record now (the high watermark once no transaction is open)."""
        _low, high = self._consumer.get_watermark_offsets(TopicPartition(self.topic, 0), timeout=self.timeout_s,
                                                          cached=False)
        return int(high)

    def read_to_end(self) -> Iterator[RawRecord]:
        """Every committed record from the position up to the end of the log as it is at the call."""
        end = self.end_offset()
        self._at_end = False
        deadline = time.monotonic() + self.timeout_s
        while self.position < end and not (self._at_end and self.position >= end):
            batch = self.poll(min(1.0, self.timeout_s))
            if batch:
                deadline = time.monotonic() + self.timeout_s
            elif self._at_end:
                # Reached the end the broker reports for read_committed (the last stable offset): an open
                # transaction ahead of it (a leader writing) is not ours to wait for.
                if self.position >= end or self.end_offset() <= self.position:
                    return
                self._at_end = False
            elif time.monotonic() > deadline:
                raise TimeoutError(f"{self.topic} stalled at offset {self.position} of {end}")
            yield from batch

    def close(self) -> None:
        self._consumer.close()


@dataclass(frozen=True)
class LogEntry:
    offset: int
    command: routing_pb2.RoutingCommand

    @property
    def heartbeat(self) -> routing_pb2.LeaderHeartbeat | None:
        return self.command.leader_heartbeat if self.command.HasField("leader_heartbeat") else None


class CommandLogReader:
    """The command log decoded; counts the commands it has seen (snapshots carry the count)."""

    def __init__(self, bootstrap_servers: str, topic: str = TOPIC, *, start: int | None = None,
                 commands: int = 0, timeout_s: float = 30.0) -> None:
        self._reader = PartitionReader(bootstrap_servers, topic, start=start, timeout_s=timeout_s)
        self.commands = commands
        if start is None and self._reader.low > 0:
            self._reader.close()
            raise LogTruncated(f"{topic} starts at offset {self._reader.low} (older records were deleted by "
                               "retention) and there is no snapshot covering them")

    @property
    def position(self) -> int:
        return self._reader.position

    def poll(self, timeout_s: float) -> list[LogEntry]:
        return [e for e in map(self._decode, self._reader.poll(timeout_s)) if e is not None]

    def read_to_end(self) -> Iterator[LogEntry]:
        for raw in self._reader.read_to_end():
            entry = self._decode(raw)
            if entry is not None:
                yield entry

    def _decode(self, raw: RawRecord) -> LogEntry | None:
        try:
            command = wire.decode(raw.value, routing_pb2.RoutingCommand,
                                  wire.header_value(raw.headers, wire.CONTENT_TYPE))
        except wire.WireError as exc:
            # A record the router itself wrote cannot be undecodable unless corrupted: skip it loudly.
            log.error("skipping command log record %s/%s: %s", self._reader.topic, raw.offset, exc)
            return None
        if not command.HasField("leader_heartbeat"):
            self.commands += 1
        return LogEntry(raw.offset, command)

    def close(self) -> None:
        self._reader.close()


# -- writing -------------------------------------------------------------------------------------------------


@dataclass
class _Item:
    topic: str
    key: str
    # A message, or a function of the log offset it must follow (a snapshot covers the records before it).
    message: ProtoMessage | Callable[[int], ProtoMessage]
    done: asyncio.Future[int] | None = None
    loop: asyncio.AbstractEventLoop | None = None
    offset: int = -1
    in_log: bool = False
    wire_format: str | None = None  # None: the writer's


class TransactionalLogWriter:
    """The leader's producer for the command log, its decisions and its snapshots, in transactions.

    `submit` queues a record (called in the order the core applied the commands: the log keeps that order) and
    returns a future resolved with its offset once its transaction committed. A thread commits what is queued
    (group commit: while one transaction commits, the next one fills), and commits a heartbeat when there was
    nothing to commit for `heartbeat_s`. On a fatal error (fenced by a newer leader) every pending future fails
    with LeadershipLost and `on_lost` is called once; nothing more is ever written.
    """

    def __init__(self, bootstrap_servers: str, *, transactional_id: str, log_topic: str, instance_id: str,
                 heartbeat_s: float, wire_format: str = "json", client_id: str = "routing",
                 on_lost: Callable[[LeadershipLost], None] | None = None, timeout_s: float = 30.0) -> None:
        self.log_topic = log_topic
        self.instance_id = instance_id
        self.heartbeat_s = heartbeat_s
        self.timeout_s = timeout_s
        self.wire_format = wire_format
        self._on_lost = on_lost
        self._producer = Producer({
            **PRODUCER_DEFAULTS, "bootstrap.servers": bootstrap_servers, "client.id": client_id,
            "logger": LIBRDKAFKA_LOG,
            # The same id for every router of this log: a new leader's init_transactions() bumps the epoch and
            # the broker refuses the old leader's writes from then on (it is fenced).
            "transactional.id": transactional_id,
            # A leader that dies with a transaction open holds back read_committed readers of its topics until
            # the broker aborts it; our transactions last milliseconds, so 10 s is plenty and keeps that short.
            "transaction.timeout.ms": 10_000,
            # librdkafka requires a record's delivery time-out within the transaction's; an undelivered record
            # makes the transaction abortable, and the batch is written again in a new one.
            "delivery.timeout.ms": 10_000,
            # Every command waits for its commit: batching comes from the group commit, not from lingering.
            "linger.ms": 0,
            "message.max.bytes": MAX_RECORD_BYTES,
        })
        self._cond = threading.Condition()
        self._pending: list[_Item] = []
        self._closing = False
        self._resign = False
        self._thread: threading.Thread | None = None
        self.lost: LeadershipLost | None = None
        # The offset after the newest log record: where a snapshot taken now starts the replay.
        self.next_offset = 0
        self.commits = 0
        self.submitted = 0  # log records queued by submit(): the commands logged since start()

    # -- lifecycle (blocking: call from a thread) --------------------------------------------------------------
    def open(self) -> None:
        """Take the log: fences every older writer and aborts its open transaction (waits for one committing)."""
        self._producer.init_transactions(self.timeout_s)

    def start(self, next_offset: int) -> None:
        """Start committing; `next_offset` is the end of the log as read after `open()`."""
        self.next_offset = next_offset
        self._thread = threading.Thread(target=self._run, name="routing-log-writer", daemon=True)
        self._thread.start()

    def close(self, *, resign: bool) -> None:
        """Commit what is queued (and a resigning heartbeat: a standby takes over at once), then stop."""
        with self._cond:
            self._closing = True
            self._resign = resign and self.lost is None
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(self.timeout_s * 2)
        self._producer.flush(self.timeout_s)

    # -- queueing (event loop thread) ---------------------------------------------------------------------------
    def submit(self, topic: str, message: ProtoMessage, *, key: str) -> asyncio.Future[int]:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[int] = loop.create_future()
        if self.lost is not None:
            done.set_exception(self.lost)
            return done
        self._queue(_Item(topic, key, message, done, loop))
        self.submitted += 1
        return done

    def publish(self, topic: str, message: ProtoMessage, *, key: str) -> None:
        """Queue a record nobody waits for (decisions): it commits with the next transaction."""
        if self.lost is None:
            self._queue(_Item(topic, key, message))

    def snapshot(self, topic: str, key: str, build: Callable[[int], ProtoMessage]) -> None:
        """Queue a snapshot after every record queued so far; `build(next_offset)` runs in the writer thread
        once the offsets of those records are known, and the snapshot commits with them or not at all."""
        if self.lost is None:
            # Binary always: the state is compressed bytes (the JSON mapping would base64 them, a third more).
            self._queue(_Item(topic, key, build, wire_format="protobuf"))

    def _queue(self, item: _Item) -> None:
        with self._cond:
            self._pending.append(item)
            self._cond.notify()

    # -- the committing thread ----------------------------------------------------------------------------------
    def _run(self) -> None:
        last_commit = time.monotonic()
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    wait = self.heartbeat_s - (time.monotonic() - last_commit)
                    if wait <= 0:
                        break
                    self._cond.wait(wait)
                batch, self._pending = self._pending, []
                closing, resign = self._closing, self._resign
            if closing:
                if resign:
                    batch.append(self._heartbeat(resigning=True))
                if not batch:
                    return
            elif not batch:
                batch = [self._heartbeat(resigning=False)]
            try:
                self._commit(batch)
            except LeadershipLost as exc:
                self._fail(batch, exc)
                return
            last_commit = time.monotonic()
            self.commits += 1
            for item in batch:
                if item.done is not None and item.loop is not None:
                    item.loop.call_soon_threadsafe(_settle, item.done, item.offset, None)
            if closing:
                return

    def _heartbeat(self, *, resigning: bool) -> _Item:
        record = routing_pb2.RoutingCommand(envelope=new_envelope(self.instance_id, datetime.now(UTC)))
        record.leader_heartbeat.instance_id = self.instance_id
        record.leader_heartbeat.resigning = resigning
        return _Item(self.log_topic, "router", record)

    def _commit(self, batch: list[_Item]) -> None:
        while True:
            try:
                self._producer.begin_transaction()
                for item in batch:
                    self._produce(item)
                self._commit_with_retries()
                return
            except KafkaException as exc:
                error: KafkaError = exc.args[0]
                if error.fatal() or error.code() in _FENCED_CODES:
                    raise LeadershipLost(f"the command log {self.log_topic} was taken over: {error}") from exc
                if not error.txn_requires_abort():
                    raise LeadershipLost(f"the command log {self.log_topic} cannot be written: {error}") from exc
                # The transaction failed but the producer is fine: abort it and write the same batch again (the
                # core applied these commands; the log must have them, in the same order).
                log.warning("routing log transaction aborted, retrying %d records: %s", len(batch), error)
                self._producer.abort_transaction(self.timeout_s)

    def _commit_with_retries(self) -> None:
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                self._producer.commit_transaction(self.timeout_s)
                return
            except KafkaException as exc:
                if not exc.args[0].retriable() or time.monotonic() > deadline:
                    raise

    def _produce(self, item: _Item) -> None:
        message = item.message
        if not isinstance(message, ProtoMessage):
            # The offsets of the records before it are known once they are delivered (still uncommitted).
            self._producer.flush(self.timeout_s)
            message = message(self.next_offset)
        fmt = item.wire_format or self.wire_format
        value = wire.encode(message, fmt)
        headers: list[tuple[str, str | bytes | None]] = [(wire.CONTENT_TYPE, wire.content_type(fmt).encode())]
        item.in_log = item.topic == self.log_topic

        def delivered(err: KafkaError | None, msg: Message) -> None:
            if err is None and item.in_log:
                item.offset = msg.offset() or 0
                self.next_offset = max(self.next_offset, item.offset + 1)

        while True:
            try:
                self._producer.produce(item.topic, value=value, key=item.key.encode(), headers=headers,
                                       on_delivery=delivered)
                break
            except BufferError:
                # The local queue is full (Kafka slow): serve delivery reports until there is room.
                self._producer.poll(0.1)
        self._producer.poll(0)

    def _fail(self, batch: list[_Item], exc: LeadershipLost) -> None:
        with self._cond:
            self.lost = exc
            rest, self._pending = self._pending, []
        log.error("routing: %s; this router stops writing", exc)
        for item in batch + rest:
            if item.done is not None and item.loop is not None:
                item.loop.call_soon_threadsafe(_settle, item.done, -1, exc)
        if self._on_lost is not None:
            self._on_lost(exc)


_FENCED_CODES = frozenset({KafkaError._FENCED, KafkaError.INVALID_PRODUCER_EPOCH,
                           getattr(KafkaError, "PRODUCER_FENCED", KafkaError._FENCED)})


def _settle(done: asyncio.Future[int], offset: int, exc: BaseException | None) -> None:
    if done.done():
        return
    if exc is None:
        done.set_result(offset)
    else:
        done.set_exception(exc)
