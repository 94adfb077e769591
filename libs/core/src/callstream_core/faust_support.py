"""Faust (faust-streaming) set up around its known traps (architecture.md, "Checked facts").

- Windows expire on wall-clock time: never use Faust windows; bucket by event time in our own code.
- An agent that raises still has its messages acknowledged: agent bodies catch every error, send
  undecodable input to the DLQ, and retry sinks until they succeed (an outage pauses, never skips).
- `concurrency` > 1 can commit past an in-flight message: every agent runs with concurrency 1.
- `stream.take_events` acknowledges a batch only after the agent body has handled it, so a batch
  is committed only after its sink succeeded.
- Faust hands each message on through its conductor, a channel queue and the stream iterator: ~80 µs of
  CPU per message with an empty agent (docs/benchmarks.md, issue 19), whatever the batching. Hot topics are
  read through `BatchApp.batch_topic` instead: the same consumer, group, commits and rebalancing, one hand-off
  per batch.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, ConsumerT, Message
from google.protobuf.message import Message as ProtoMessage

from callstream_core import wire
from callstream_core.kafka import DeadLetters, Received
from callstream_core.topics import Topic

M = TypeVar("M", bound=ProtoMessage)
log = logging.getLogger(__name__)
TEMP_DATA_ROOT = Path(tempfile.gettempdir()) / "callstream-faust"


def make_app(app_id: str, bootstrap_servers: str, **overrides: Any) -> BatchApp:
    settings: dict[str, Any] = {
        "broker": f"kafka://{bootstrap_servers}",
        # No Faust tables are used (state lives in ClickHouse and in memory rebuilt from it).
        "store": "memory://",
        # Our own FastAPI serves health, metrics and the API; Faust's web server would be a second one.
        "web_enabled": False,
        # Topics come from the registry (`callstream topics apply`), with their partitions and retention.
        "topic_allow_declare": False,
        "topic_disable_leader": True,
        # A new consumer group reads from the beginning: nothing published before it started is skipped.
        "consumer_auto_offset_reset": "earliest",
        # At most this many records per poll of the fetcher: it returns one partition's fetch (a megabyte,
        # thousands of records) before the next one's, and a batch consumer caps what a partition has in hand
        # (BatchConsumer) only between polls; 500 (Kafka's default; unbounded in aiokafka) keeps that fine.
        "broker_max_poll_records": 500,
        # Commit acknowledged offsets often: after a crash at most a few seconds are re-read (and
        # deduplicated by the sinks).
        "broker_commit_every": 1000,
        "broker_commit_interval": 1.0,
        # Every write confirmed by all in-sync replicas.
        "producer_acks": -1,
        # Faust creates its data directory at start even with the memory store; by default that is
        # `<app id>-data` in the working directory, which litters a checkout and is read-only in a pod.
        # APP_DATADIR (the chart sets an emptyDir) wins; else the system's temporary directory.
        "datadir": os.environ.get("APP_DATADIR") or str(TEMP_DATA_ROOT / f"{app_id}-data"),
    }
    settings.update(overrides)
    # Faust makes the data directory but not its parents.
    Path(settings["datadir"]).parent.mkdir(parents=True, exist_ok=True)
    return BatchApp(app_id, **settings)


def faust_topic(app: faust.App, topic: Topic) -> faust.TopicT:
    """The registry topic as raw bytes: decoding is ours, so a bad message goes to the DLQ, not a crash."""
    return app.topic(topic.name, key_serializer="raw", value_serializer="raw", partitions=topic.partitions)


def decode_events(messages: Sequence[Message], topic: Topic, dead_letters: DeadLetters,
                  check: Callable[[Any], str | None] | None = None) -> list[Received[Any]]:
    """Decode a batch; what cannot be decoded, or what `check` refuses (it returns the reason), is
    dead-lettered with its reason and left out."""
    decoded: list[Received[Any]] = []
    for msg in messages:
        raw_headers = msg.headers or []
        pairs = list(raw_headers.items()) if isinstance(raw_headers, dict) else list(raw_headers)
        headers: list[tuple[str, str | bytes | None]] = [(str(k), v) for k, v in pairs]
        value = msg.value if isinstance(msg.value, bytes | None) else bytes(msg.value)
        try:
            body = wire.decode(value, topic.message_type, wire.header_value(headers, wire.CONTENT_TYPE))
            problem = check(body) if check is not None else None
        except wire.WireError as exc:
            problem = str(exc)
        if problem is not None:
            key = msg.key if isinstance(msg.key, bytes | str | None) else bytes(msg.key)
            dead_letters.send_record(msg.topic, msg.partition, msg.offset, key, value, headers, problem)
            continue
        key_bytes = msg.key
        decoded.append(Received(topic=msg.topic, partition=msg.partition, offset=msg.offset,
                                key=key_bytes.decode() if isinstance(key_bytes, bytes) else key_bytes,
                                value=body, timestamp_ms=int((msg.timestamp or 0) * 1000)))
    return decoded


BatchHandler = Callable[[list[Message]], Awaitable[None]]


@dataclass
class BatchRoute:
    """A topic read a batch at a time: its records go to `handler` once `max_events` are buffered or
    `within_s` has passed since the first (fewer, larger ClickHouse inserts at low rates)."""

    handler: BatchHandler
    max_events: int
    within_s: float
    pending: list[Message] = field(default_factory=list)
    since: float = 0.0  # monotonic time of the first pending record


class BatchApp(faust.App):
    """A Faust app whose consumer can hand whole batches to a handler (`batch_topic`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batch_routes: dict[str, BatchRoute] = {}
        self._batch_topics: list[faust.TopicT] = []

    def batch_topic(self, topic: faust.TopicT, handler: BatchHandler, *, max_events: int, within_s: float) -> None:
        """Subscribe to `topic`; its records go to `handler` in batches (see `BatchConsumer`). The handler
        must not raise: the batch is acknowledged when it returns."""
        for name in topic.get_topic_name().split(","):
            self.batch_routes[name] = BatchRoute(handler, max_events, within_s)
        self._batch_topics.append(topic)

    async def on_start(self) -> None:
        await super().on_start()
        if self._batch_topics and self.agents:
            raise RuntimeError("an app reads either batch topics or agents' topics: the consumer has one loop")
        # Subscribed here, not in `batch_topic`: the conductor is made on first use and binds the event loop
        # current then, which must be the loop the app runs in.
        for topic in self._batch_topics:
            self.topics.add(topic)

    def _new_consumer(self) -> ConsumerT:
        transport = self.transport
        if not isinstance(transport, faust_aiokafka.Transport):
            raise RuntimeError(f"batch topics need Faust's aiokafka transport (kafka://), not {transport!r}")
        return BatchConsumer(transport, callback=self.topics.on_message, loop=transport.loop,
                             on_partitions_revoked=self._on_partitions_revoked,
                             on_partitions_assigned=self._on_partitions_assigned, beacon=self.beacon)


class BatchConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer, handing the records of batch topics to their handler a batch at a time.

    Everything else is Faust's: group membership and rebalances, flow control, the seek back to committed
    offsets after a rebalance, and the commit of acknowledged offsets (every `broker_commit_every` acks and
    every `broker_commit_interval`). What changes is only the hand-off: Faust's drain loop awaits a callback
    per message (the conductor, a channel queue, the stream: ~80 µs of CPU each); this one buffers each
    fetch's records per topic and queues full batches to one delivery task, which runs the handler and then
    acknowledges the batch's messages. Delivery runs outside the fetcher task, which a rebalance cancels: a
    batch queued before a revocation is tracked, so Faust waits for it (`wait_empty`) before the partitions go,
    and the revocation signal comes after it. Records still buffered when the flow stops are dropped untracked
    and read again after Faust's seek back to the committed offsets. An app without batch topics keeps Faust's
    own loop.

    A partition with its share of `IN_HAND_BATCHES` batches of its topic taken and not yet handled is not read
    further until the handler has some of them (Faust's buffer-full pause): the fetcher returns one partition's
    fetch before the next's, so without this cap one partition's whole fetch (a megabyte: 8,000 events, days of
    event time in a replay) went ahead of every other partition, and a handler pausing the partitions that run
    ahead (the KPI worker) learnt of it only after all of it was taken. A topic whose partitions are all at
    their cap or paused has its pending batch handed over at once (no more can come). When every partition is
    paused or at its cap, the loop waits for one to be readable again, where Faust's would sleep a second.
    """

    # Batches waiting for the delivery task: one in hand and one more keeps the fetcher a batch ahead
    # without holding more than two batches in memory.
    DELIVERY_QUEUE = 2

    @property
    def _routes(self) -> dict[str, BatchRoute]:
        return cast(BatchApp, self.app).batch_routes

    _delivery_queue: asyncio.Queue[tuple[BatchRoute, list[Message]]] | None = None

    @property
    def _deliveries(self) -> asyncio.Queue[tuple[BatchRoute, list[Message]]]:
        # Made on first use, inside the running loop (the consumer itself may be built outside it).
        if self._delivery_queue is None:
            self._delivery_queue = asyncio.Queue(self.DELIVERY_QUEUE)
        return self._delivery_queue

    # Records a topic's partitions may have in hand together (taken, not yet handled), in batches of its route:
    # one being handled and one queued keep the reading going while a batch is handled. Each assigned partition
    # has an equal share, a fraction of a batch: hours of a replay's event time, not days. A share that grew as
    # partitions are paused (measured) let the partition left readable, the slowest, leap days ahead of the
    # others, which then held every call of those days until they caught up.
    IN_HAND_BATCHES = 2
    # How long one poll waits while a partition is at its cap (see `_drain_messages`).
    CAPPED_POLL_S = 0.05

    def _caps(self) -> dict[str, int]:
        """Records each assigned partition (being read, at its cap, or paused) of a batch topic may have in hand."""
        assigned = Counter(tp.topic for tp in self._get_active_partitions() | self._buffered_partitions
                           | self._paused_partitions)
        return {name: max(1, self.IN_HAND_BATCHES * route.max_events // max(1, assigned[name]))
                for name, route in self._routes.items()}

    def _apply_caps(self) -> None:
        """Hold back the partitions with their share in hand, release those under it (a share changes only with
        the assignment: paused partitions keep theirs)."""
        caps, in_hand, buffered = self._caps(), self._in_hand, self._buffered_partitions
        for tp in list(self._get_active_partitions()):
            cap = caps.get(tp.topic)
            if cap is not None and in_hand[tp] >= cap:
                self.on_buffer_full(tp)
        for tp in list(buffered):
            if in_hand[tp] < caps.get(tp.topic, 0):
                buffered.discard(tp)
                if tp not in self._paused_partitions:
                    self._get_active_partitions().add(tp)
                    self._readable.set()

    _taken_per_partition: Counter[TP] | None = None

    @property
    def _in_hand(self) -> Counter[TP]:
        """Records per partition taken from the fetcher and not yet handled (buffered or queued)."""
        if self._taken_per_partition is None:
            self._taken_per_partition = Counter()
        return self._taken_per_partition

    def _handed(self, messages: Sequence[Message]) -> None:
        """`messages` are handled (or dropped): a partition under its cap again is read again, unless it is
        paused. Faust's own `on_buffer_drop` resumes it even when paused."""
        in_hand = self._in_hand
        for tp, count in Counter(TP(m.tp.topic, m.tp.partition) for m in messages).items():
            # Faust's partition sets hold its own TP type (it asserts so), not aiokafka's.
            in_hand[tp] -= count
            if in_hand[tp] <= 0:
                del in_hand[tp]
        self._apply_caps()

    _readable_event: asyncio.Event | None = None

    @property
    def _readable(self) -> asyncio.Event:
        """Set when a partition may be read again (under its cap, or resumed)."""
        # Made on first use, inside the running loop (like the delivery queue).
        if self._readable_event is None:
            self._readable_event = asyncio.Event()
        return self._readable_event

    def resume_partitions(self, tps: Iterable[TP]) -> None:
        super().resume_partitions(tps)
        # A partition still at its cap stays unread until a batch of it is handled (`_handed` releases it).
        self._get_active_partitions().difference_update(self._buffered_partitions)
        self._readable.set()

    @faust_aiokafka.Consumer.task
    async def _deliver(self) -> None:
        queue = self._deliveries
        while not self.should_stop:
            route, messages = await queue.get()
            try:
                await route.handler(messages)
            except Exception:  # handlers catch their own errors; one that escapes is a bug: log, never stall
                log.exception("batch handler failed on %d records of %s", len(messages), messages[0].topic)
            for message in messages:
                self.ack(message)
            self._handed(messages)

    async def _drain_messages(self, fetcher: Any) -> None:
        routes = self._routes
        if not routes:  # an app of agents only: Faust's own loop
            return await super()._drain_messages(fetcher)
        commit_every = self._commit_every
        try:
            while not (self._stopped.is_set() or fetcher._stopped.is_set()):
                timeout = self._fetch_timeout(routes)
                if self._buffered_partitions:
                    # A partition at its cap is readable again once a batch of it is handled, but a fetch
                    # already waiting would only see it after its timeout (a second when nothing is pending):
                    # wait briefly instead, so the partition is read again within this.
                    timeout = min(timeout, self.CAPPED_POLL_S)
                self._readable.clear()
                if self.flow_active and not self._get_active_partitions():
                    # Every partition is paused or at its cap: Faust's fetch would sleep a whole second; wait
                    # until one is readable again instead (a batch handled, a resume) or a pending batch is due.
                    with suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self._readable.wait(), timeout)
                    await self._hand_over(routes)
                    continue
                records, _active = await self._wait_next_records(timeout)
                if not self.flow_active:
                    # A revocation under way: what is buffered was not handed over; Faust seeks back to the
                    # committed offsets, so it is read again.
                    for route in routes.values():
                        self._handed(route.pending)
                        route.pending.clear()
                    if records:
                        await self.perform_seek()
                    continue
                for tp, batch in (records or {}).items():
                    await self._buffer(tp, batch, routes[tp.topic])
                self._apply_caps()  # before the hand-over, which asks which topics can still be read
                await self._hand_over(routes)
                if commit_every is not None and self._n_acked >= commit_every:
                    self._n_acked = 0
                    await self.commit()
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise

    @staticmethod
    def _fetch_timeout(routes: dict[str, BatchRoute]) -> float:
        """Wait for records at most until the oldest pending batch is due (Faust's own wait is 1 s)."""
        due = [r.since + r.within_s for r in routes.values() if r.pending]
        return max(0.0, min(due) - time.monotonic()) if due else 1.0

    async def _buffer(self, tp: TP, batch: Sequence[Any], route: BatchRoute) -> None:
        last = self._read_offset.get(tp)
        acking = self.app.topics.acks_enabled_for(tp.topic)
        in_hand, key = self._in_hand, TP(tp.topic, tp.partition)
        to_message = self._to_message
        if not route.pending:
            route.since = time.monotonic()
        for record in batch:
            offset = record.offset
            if last is not None and offset < last:
                continue  # read before a seek: Faust drops these too
            if acking and last is not None and offset - last > 1:
                # Offsets with no record (transaction markers, compaction) still count as done for commits.
                await self._add_gap(tp, last + 1, offset - 1)
            route.pending.append(to_message(tp, record))
            in_hand[key] += 1
            last = offset
        if last is not None:
            self._read_offset[tp] = last

    async def _hand_over(self, routes: dict[str, BatchRoute]) -> None:
        now = time.monotonic()
        # A topic none of whose partitions can be read now (each paused or at its cap) adds nothing to its
        # pending batch until that is handled: waiting `within_s` for more would only idle the handler.
        reading = {tp.topic for tp in self._get_active_partitions()}
        for name, route in routes.items():
            stalled = name not in reading
            while route.pending and (len(route.pending) >= route.max_events or now - route.since >= route.within_s
                                     or stalled):
                messages = route.pending[: route.max_events]
                await self._deliveries.put((route, messages))
                # Tracked once queued (no await in between, so before the delivery task can take it): Faust's
                # wait_empty waits for these before a revocation. A put cancelled by a rebalance queued nothing.
                for message in messages:
                    self._unacked_messages.add(message)
                del route.pending[: route.max_events]
                route.since = now
