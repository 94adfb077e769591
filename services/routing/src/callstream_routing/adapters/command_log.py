"""The routing command log on Kafka (one single-partition topic per router, i.e. per partition of queues): every
accepted command in order with the clock it was applied at, and the leader's heartbeats.

Writing is `TransactionalLogWriter`, the leader's only producer of the log: a transactional producer whose
`transactional.id` is the same for every router of the log, so the `init_transactions()` of a new leader fences
the old one. The transaction is there for its fencing: the broker checks every write of a transactional
producer against its epoch, so once a new leader's `init_transactions()` returned (it bumps the epoch and waits
until the old leader's open transaction is aborted), the old leader cannot append one more record, and every
record the old leader had confirmed lies before the end the new leader reads to. A record therefore counts (and
its command is answered) as soon as the broker confirmed it (acks=all), and readers read every confirmed record
(`read_uncommitted`); transactions are committed in the background every `COMMIT_EVERY_S`. Waiting for a
commit before every answer measured 3× the latency of a durable command (7.5 against 2.5 ms p50).

A fenced (zombie) leader's pending commands fail with `LeadershipLost` instead of being answered, so no answer
is ever given that the new leader does not know of.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from google.protobuf.message import Message as ProtoMessage

from callstream.routing.v1 import routing_pb2
from callstream_core import wire
from callstream_core.envelope import new_envelope
from callstream_core.kafka import LIBRDKAFKA_LOG, PRODUCER_DEFAULTS, EventProducer
from callstream_core.topics import ROUTING_COMMANDS

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
    """Partition 0 of a single-partition topic from an offset on, every confirmed record, no consumer group."""

    def __init__(self, bootstrap_servers: str, topic: str, *, start: int | None, timeout_s: float = 30.0) -> None:
        self.topic = topic
        self.timeout_s = timeout_s
        self._consumer = Consumer({
            "bootstrap.servers": bootstrap_servers, "logger": LIBRDKAFKA_LOG,
            # Offsets are ours (the snapshot's next_offset), never a group's: nothing is committed.
            "group.id": f"routing-reader-{topic}", "enable.auto.commit": False, "enable.auto.offset.store": False,
            # Every record a leader had confirmed, also in a transaction aborted by its fencing (module doc):
            # it was answered, so it is state. A fenced leader cannot write anything after that.
            "isolation.level": "read_uncommitted",
            # The end of the log is where a replay stops: librdkafka tells it by an EOF event.
            "enable.partition.eof": True,
            # Snapshot records are several MB: fetch them whole.
            "receive.message.max.bytes": MAX_RECORD_BYTES + 1024 * 1024,
        })
        metadata = self._consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
        if metadata is None or not metadata.partitions:
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
        """The offset after the last confirmed record now (the high watermark)."""
        _low, high = self._consumer.get_watermark_offsets(TopicPartition(self.topic, 0), timeout=self.timeout_s,
                                                          cached=False)
        return int(high)

    def read_to_end(self) -> Iterator[RawRecord]:
        """Every confirmed record from the position up to the end of the log as it is at the call."""
        end = self.end_offset()
        self._at_end = False
        deadline = time.monotonic() + self.timeout_s
        while self.position < end:
            batch = self.poll(min(1.0, self.timeout_s))
            if batch:
                deadline = time.monotonic() + self.timeout_s
            elif self._at_end:
                return
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

    def __init__(self, bootstrap_servers: str, topic: str = ROUTING_COMMANDS, *, start: int | None = None,
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
class LogMark:
    """A point in the writer's queue (`TransactionalLogWriter.mark`): `next_offset` is the end of the log once
    every record queued before the mark is confirmed, i.e. where a replay of what follows the mark starts."""

    next_offset: int = -1


@dataclass
class _Item:
    topic: str
    key: str
    # The encoded record; a mark (nothing is written); or a snapshot record, built in the writer thread once its
    # mark's offset is known.
    value: bytes | LogMark | Callable[[], ProtoMessage]
    headers: list[tuple[str, str | bytes | None]]
    done: asyncio.Future[int] | None = None  # None: nobody waits for this record
    loop: asyncio.AbstractEventLoop | None = None
    offset: int = -1
    in_log: bool = False
    published: bool = False  # a decision: produced outside the transactions, once the batch is confirmed


TRANSACTION_TIMEOUT_MS = 10_000
# How old the open transaction gets before it is committed (in the background, see TransactionalLogWriter):
# well inside the broker's transaction time-out, and rare, because the first record of each new transaction pays
# one more round trip to the coordinator.
COMMIT_EVERY_S = 4.0


class TransactionalLogWriter:
    """The leader's producer for the command log and its snapshots, in transactions (decisions: `publish`).

    `submit` queues a record (called in the order the core applied the commands: the log keeps that order) and
    returns a future resolved with its offset once the broker confirmed it. A thread writes what is queued
    (group commit: while one batch is being confirmed, the next one fills), writes a heartbeat when there was
    nothing to write for `heartbeat_s`, and commits the open transaction once it is `COMMIT_EVERY_S` old. On any
    write error (fenced by a newer leader, or a record not confirmed: the log would no longer match the core)
    every pending future fails with LeadershipLost and `on_lost` is called once; nothing more is ever written.

    Two transactional producers take turns: when the open transaction is due, its producer commits it in the
    background and the other one takes the next records. A transactional producer cannot write while it commits,
    so with one producer every command arriving meanwhile waited for the commit (the coordinator's round trips
    and, on the next write, its CONCURRENT_TRANSACTIONS retries while the markers are written), which doubled
    durable commands' p99 (docs/benchmarks.md, "Measurements behind design choices"). The turn changes only
    once every record of the first producer is confirmed, so the log keeps the order the core applied the
    commands in. Both transactional ids belong to this log, and `open()` fences both.
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
        self._producers = [Producer({
            **PRODUCER_DEFAULTS, "bootstrap.servers": bootstrap_servers, "client.id": client_id,
            "logger": LIBRDKAFKA_LOG,
            # The same ids for every router of this log: a new leader's init_transactions() bumps their epochs and
            # the broker refuses the old leader's writes from then on (it is fenced).
            "transactional.id": f"{transactional_id}.{turn}",
            # The broker aborts a transaction older than this; ours are committed every COMMIT_EVERY_S, and a
            # dead leader's open transaction then holds the log's last stable offset back for 10 s at most.
            "transaction.timeout.ms": TRANSACTION_TIMEOUT_MS,
            # librdkafka requires a record's delivery time-out within the transaction's; an undelivered record
            # makes this router give up the log (the core has a command the log has not).
            "delivery.timeout.ms": 10_000,
            # Every command waits for its record: batching comes from the group commit, not from lingering.
            "linger.ms": 0,
            "message.max.bytes": MAX_RECORD_BYTES,
        }) for turn in (0, 1)]
        self._producer = self._producers[0]  # the producer whose turn it is (writer thread only)
        # Commits run here, one at a time; the future of each producer's last commit.
        self._committer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="routing-log-commit")
        self._commits: dict[int, Future[None]] = {}
        # Idempotent, not transactional (see publish()); the shared producer settings (acks=all, murmur2).
        self._decisions = EventProducer(bootstrap_servers, client_id=client_id, wire_format=wire_format)
        self._cond = threading.Condition()
        self._pending: list[_Item] = []
        self._closing = False
        self._resign = False
        self._thread: threading.Thread | None = None
        self.lost: LeadershipLost | None = None
        # The offset after the newest log record: where a snapshot taken now starts the replay.
        self.next_offset = 0
        self.submitted = 0  # log records queued by submit(): the commands logged since start()
        self._headers = _headers(wire_format)

    # -- lifecycle (blocking: call from a thread) --------------------------------------------------------------
    def open(self) -> None:
        """Take the log: fences every older writer and aborts its open transactions (waits for one committing).

        An old leader may still write through the second id until it is fenced too: those records lie before
        the end that the new leader reads to after `open()`, like everything the old leader wrote."""
        for producer in self._producers:
            producer.init_transactions(self.timeout_s)

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
        self._committer.shutdown(wait=True)
        if self.lost is None:  # a fenced producer has nothing to flush: it raises its fatal error instead
            for producer in self._producers:
                producer.flush(self.timeout_s)
        self._decisions.flush(self.timeout_s)

    # -- queueing (event loop thread) ---------------------------------------------------------------------------
    def submit(self, topic: str, message: ProtoMessage, *, key: str) -> asyncio.Future[int]:
        """Queue a record and return a future of its offset, resolved once the broker confirmed it."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[int] = loop.create_future()
        if self.lost is not None:
            done.set_exception(self.lost)
            return done
        self._queue(self._encoded(topic, key, message, done, loop))
        return done

    def submit_unwaited(self, topic: str, message: ProtoMessage, *, key: str) -> None:
        """Queue a record nobody waits for (log_ack=async): a failure shows as `lost` and `on_lost`, and the
        writer never wakes the event loop for it (settling a future per record cost a loop turn per command)."""
        if self.lost is None:
            self._queue(self._encoded(topic, key, message, None, None))

    def _encoded(self, topic: str, key: str, message: ProtoMessage, done: asyncio.Future[int] | None,
                 loop: asyncio.AbstractEventLoop | None) -> _Item:
        # Encoded here, in the caller's thread: the writer thread then holds the GIL only for the produce calls,
        # so the event loop rarely waits for it (a JSON encode there delayed the next request behind it).
        self.submitted += 1
        return _Item(topic, key, wire.encode(message, self.wire_format), self._headers, done, loop)

    def publish(self, topic: str, message: ProtoMessage, *, key: str) -> None:
        """Publish a record nobody waits for (decisions), outside the transactions, once every log record queued
        before it is confirmed (so a decision never precedes its command in the log, whatever `log_ack`).

        The writer thread produces it: a produce() call cost the event loop 25-35 us on a quiet machine and about
        200 us on average while the router served 250 offers/s (py-spy, a third of a command's time).
        A transaction that touched the decision topic's partitions would cost an AddPartitionsToTxn round trip
        per partition (measured: a transaction of one record 10.6 ms, with three decision partitions 20 ms).
        What that gives up is small: a frozen leader's timer could publish a few more decisions before its next
        write finds it fenced (within a heartbeat), and those carry the same deterministic event ids as the new
        leader's decisions for the same deadlines (sinks drop repeats)."""
        if self.lost is None:
            self._queue(_Item(topic, key, wire.encode(message, self.wire_format), self._headers, published=True))

    def mark(self) -> LogMark:
        """Mark the queue here (call it where the core's state is captured for a snapshot): the mark's
        `next_offset` is set once the records queued before it are confirmed."""
        mark = LogMark()
        if self.lost is None:
            self._queue(_Item(self.log_topic, "", mark, []))
        return mark

    def snapshot(self, topic: str, key: str, mark: LogMark, build: Callable[[int], ProtoMessage]) -> None:
        """Queue a snapshot of the state captured at `mark` (queued earlier); `build(mark.next_offset)` runs in the
        writer thread, so a snapshot never covers a record the log lacks. Records queued between the mark and
        the snapshot are not in it, and a replay from the snapshot applies them."""
        if self.lost is None:
            # Binary always: the state is compressed bytes (the JSON mapping would base64 them, a third more).
            self._queue(_Item(topic, key, lambda: build(mark.next_offset), _headers("protobuf")))

    def _queue(self, item: _Item) -> None:
        with self._cond:
            self._pending.append(item)
            self._cond.notify()

    # -- the committing thread ----------------------------------------------------------------------------------
    def _run(self) -> None:
        txn_since: float | None = None  # when the open transaction began
        last_write = time.monotonic()
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    now = time.monotonic()
                    # Awake for the next heartbeat, or to commit the open transaction once it is due.
                    due = last_write + self.heartbeat_s
                    if txn_since is not None:
                        due = min(due, txn_since + COMMIT_EVERY_S)
                    wait = due - now
                    if wait <= 0:
                        break
                    self._cond.wait(wait)
                batch, self._pending = self._pending, []
                closing, resign = self._closing, self._resign
            if closing and resign:
                batch.append(self._heartbeat(resigning=True))
            elif not batch and time.monotonic() - last_write >= self.heartbeat_s:
                batch = [self._heartbeat(resigning=False)]
            try:
                if batch:
                    in_transaction = any(not item.published and not isinstance(item.value, LogMark) for item in batch)
                    if in_transaction and txn_since is None:
                        self._producer.begin_transaction()
                        txn_since = time.monotonic()
                    self._write(batch)
                    if any(item.in_log for item in batch):  # only a log record is the leader's sign of life
                        last_write = time.monotonic()
                    _settle_all(batch, None)
                if txn_since is not None and (closing or time.monotonic() - txn_since >= COMMIT_EVERY_S):
                    self._hand_over()
                    txn_since = None
                self._check_commits(wait=closing)
            except KafkaException as exc:
                self._fail(batch, self._lost(exc.args[0]))
                return
            except LeadershipLost as exc:
                self._fail(batch, exc)
                return
            if closing:
                return

    def _heartbeat(self, *, resigning: bool) -> _Item:
        record = routing_pb2.RoutingCommand(envelope=new_envelope(self.instance_id, datetime.now(UTC)))
        record.leader_heartbeat.instance_id = self.instance_id
        record.leader_heartbeat.resigning = resigning
        return _Item(self.log_topic, "router", wire.encode(record, self.wire_format), self._headers)

    def _write(self, batch: list[_Item]) -> None:
        """Produce the batch in the open transaction and wait until the broker confirmed every record."""
        errors: list[KafkaError] = []
        decisions = []
        for item in batch:
            if item.published:
                decisions.append(item)
            else:
                self._produce(item, errors)
        self._confirmed(errors)
        if errors:
            # The core applied these commands; a log without one of them (or with a later one before it) is
            # not the state any more: stop, and let the next leader rebuild from what the log has.
            raise self._lost(errors[0])
        for item in decisions:
            assert isinstance(item.value, bytes)
            self._decisions.produce_raw(item.topic, item.value, key=item.key, headers=item.headers)
        if decisions:
            self._decisions.poll(0)  # serves the delivery reports queued so far (there are no callbacks)

    def _confirmed(self, errors: list[KafkaError]) -> None:
        """Serve delivery reports until every record is confirmed or one failed (flush() would wait out its
        whole time-out after a fencing error)."""
        deadline = time.monotonic() + self.timeout_s
        while len(self._producer) and not errors:
            if time.monotonic() > deadline:
                raise LeadershipLost(f"the command log {self.log_topic} did not confirm within {self.timeout_s} s")
            self._producer.poll(0.05)

    def _hand_over(self) -> None:
        """Commit the open transaction in the background (all its records are confirmed) and pass the turn."""
        turn = self._producers.index(self._producer)
        self._commits[turn] = self._committer.submit(self._commit, self._producer)
        self._producer = self._producers[1 - turn]
        previous = self._commits.get(1 - turn)
        if previous is not None:
            previous.result()  # committed COMMIT_EVERY_S ago, so long done; raises if it failed

    def _check_commits(self, *, wait: bool) -> None:
        """Raise a background commit's failure (fenced, most likely) here, in the writer thread."""
        for commit in list(self._commits.values()):
            if wait or commit.done():
                commit.result()

    def _commit(self, producer: Producer) -> None:
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                producer.commit_transaction(self.timeout_s)
                return
            except KafkaException as exc:
                error: KafkaError = exc.args[0]
                if error.txn_requires_abort():
                    # Every record of it is confirmed already (and read as such): aborting loses nothing.
                    producer.abort_transaction(self.timeout_s)
                    return
                if not error.retriable() or time.monotonic() > deadline:
                    raise

    def _lost(self, error: KafkaError) -> LeadershipLost:
        if error.code() in _FENCED_CODES:
            return LeadershipLost(f"the command log {self.log_topic} was taken over: {error}")
        return LeadershipLost(f"the command log {self.log_topic} cannot be written: {error}")

    def _produce(self, item: _Item, errors: list[KafkaError]) -> None:
        value = item.value
        if isinstance(value, LogMark):
            # The records before it must be confirmed (their offsets known) for the log's end there to be known.
            self._confirmed(errors)
            if errors:
                raise self._lost(errors[0])
            value.next_offset = self.next_offset
            return
        if not isinstance(value, bytes):
            value = wire.encode(value(), "protobuf")
        item.in_log = item.topic == self.log_topic

        def delivered(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                errors.append(err)
            elif item.in_log:
                item.offset = msg.offset() or 0
                self.next_offset = max(self.next_offset, item.offset + 1)

        while True:
            try:
                self._producer.produce(item.topic, value=value, key=item.key.encode(), headers=item.headers,
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
        _settle_all(batch + rest, exc)
        if self._on_lost is not None:
            self._on_lost(exc)


_FENCED_CODES = frozenset({KafkaError._FENCED, KafkaError.INVALID_PRODUCER_EPOCH,
                           getattr(KafkaError, "PRODUCER_FENCED", KafkaError._FENCED)})


def _headers(wire_format: str) -> list[tuple[str, str | bytes | None]]:
    return [(wire.CONTENT_TYPE, wire.content_type(wire_format).encode())]


def _settle_all(items: list[_Item], exc: BaseException | None) -> None:
    """Resolve the waited-for records' futures, one wake-up of each event loop for the whole batch."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[int], int]]] = {}
    for item in items:
        if item.done is not None and item.loop is not None:
            by_loop.setdefault(item.loop, []).append((item.done, item.offset))
    for loop, waiting in by_loop.items():
        loop.call_soon_threadsafe(_settle, waiting, exc)


def _settle(waiting: list[tuple[asyncio.Future[int], int]], exc: BaseException | None) -> None:
    for done, offset in waiting:
        if done.done():
            continue
        if exc is None:
            done.set_result(offset)
        else:
            done.set_exception(exc)
