"""The produce path shared by every adapter: events -> Kafka with their key, delivery tracked, metrics.

Call events go to ``cc.call-events.v1`` keyed by call_id, agent events to ``cc.agent-events.v1`` keyed by
agent_id. Nothing is dropped: a full local queue makes ``send`` wait (EventProducer back-pressure), and a
write Kafka did not confirm makes ``confirm()`` raise, so a caller never acknowledges upstream (a webhook
answer, a queue_log checkpoint) what Kafka has not confirmed.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import Any, TypeAlias

from confluent_kafka import KafkaError, Message
from prometheus_client import Counter, Histogram

from callstream.agent.v1 import agent_events_pb2 as ae
from callstream.call.v1 import call_events_pb2 as ce
from callstream_core.kafka import DeliveryError, EventProducer
from callstream_core.topics import AGENT_EVENTS, CALL_EVENTS, DLQ_SUFFIX

CALL_DLQ = CALL_EVENTS + DLQ_SUFFIX

RECEIVED = Counter("callstream_ingest_events_received_total",
                   "Events (or input records) an adapter received, before validation.", ["adapter"])
PRODUCED = Counter("callstream_ingest_events_produced_total",
                   "Events Kafka confirmed, by adapter and topic.", ["adapter", "topic"])
REJECTED = Counter("callstream_ingest_events_rejected_total",
                   "Input an adapter rejected (defects, validation errors, duplicates), by reason.",
                   ["adapter", "reason"])
DELIVERY_FAILED = Counter("callstream_ingest_delivery_failures_total",
                          "Events Kafka did not confirm (the caller saw an error and did not acknowledge).",
                          ["adapter"])
DEAD_LETTERED = Counter("callstream_ingest_dead_lettered_total", "Input records sent to a DLQ.", ["adapter"])
PRODUCE_LATENCY = Histogram(
    "callstream_ingest_produce_latency_seconds",
    "From produce() to Kafka's confirmation (a sample: one confirmed event in 16).", ["adapter"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)

Event: TypeAlias = ce.CallEvent | ae.AgentEvent


def route(event: Event) -> tuple[str, str]:
    """(topic, key) of an event: call events by call_id, agent events by agent_id."""
    if isinstance(event, ce.CallEvent):
        return CALL_EVENTS, event.call_id
    return AGENT_EVENTS, event.agent_id


class _Counters:
    """Pre-labelled metric children of one adapter (label lookups cost more than the increments) and the
    delivery callback of its events: one bound method for all of them, so no closure and no clock read per
    event (librdkafka measures each message's produce-to-acknowledgement time, ``Message.latency()``)."""

    # The latency histogram gets one delivery in this many: observing is the dearest step of a delivery
    # report, and a 1-in-16 sample of tens of thousands per second still gives steady percentiles.
    LATENCY_SAMPLE = 16

    def __init__(self, adapter: str, on_failure: Callable[[str, str], None], topic_prefix: str = "") -> None:
        self.adapter = adapter
        self.received = RECEIVED.labels(adapter)
        self.produced = {topic_prefix + t: PRODUCED.labels(adapter, t) for t in (CALL_EVENTS, AGENT_EVENTS)}
        self._call_topic = topic_prefix + CALL_EVENTS
        self.failed = DELIVERY_FAILED.labels(adapter)
        self.latency = PRODUCE_LATENCY.labels(adapter)
        self.dead = DEAD_LETTERED.labels(adapter)
        self._on_failure = on_failure
        self._deliveries = 0  # only picks the sample: an update lost between two polling threads is harmless
        self.on_delivery = self._delivered

    def record(self, err: KafkaError | None, msg: Message) -> None:
        """Count one delivery report."""
        if err is None:
            self.produced[msg.topic() or self._call_topic].inc()
            self._deliveries += 1
            if self._deliveries % self.LATENCY_SAMPLE == 1:
                latency = msg.latency()
                if latency is not None:
                    self.latency.observe(latency)
        else:
            self.failed.inc()

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        self.record(err, msg)
        if err is not None:
            self._on_failure(self.adapter, f"{msg.topic()} key={msg.key()!r}: {err}")


class EventSink:
    """Wraps an EventProducer for the adapters. Thread-safe; one per process is enough."""

    def __init__(self, producer: EventProducer, topic_prefix: str = "") -> None:
        self.producer = producer
        # Before every topic name: one broker serving several isolated platforms (tests, tenants).
        self.topic_prefix = topic_prefix
        self._lock = threading.Lock()
        # Per adapter: how many deliveries failed since its last confirm(), and the first of them. Bounded:
        # the AMI/ESL clients have no upstream to confirm to, so an outage must not grow a list without end.
        self._failures: dict[str, tuple[int, str]] = {}
        self._counters: dict[str, _Counters] = {}
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    def counters(self, adapter: str) -> _Counters:
        c = self._counters.get(adapter)
        if c is None:
            c = self._counters.setdefault(adapter, _Counters(adapter, self._failed, self.topic_prefix))
        return c

    def _failed(self, adapter: str, failure: str) -> None:
        with self._lock:
            count, first = self._failures.get(adapter, (0, failure))
            self._failures[adapter] = (count + 1, first)

    # -- metrics of what happens before the produce path --------------------------------------------
    def received(self, adapter: str, n: int = 1) -> None:
        self.counters(adapter).received.inc(n)

    def rejected(self, adapter: str, reason: str, n: int = 1) -> None:
        REJECTED.labels(adapter, reason).inc(n)

    # -- produce ----------------------------------------------------------------------------------
    def send(self, event: Event, adapter: str, done: _Batch | None = None) -> None:
        """Queue one event (waits while the local queue is full). Failures surface in ``confirm()``, or in
        ``done`` when given (a batch reports its own failure through its future)."""
        topic, key = route(event)
        c = self._counters.get(adapter) or self.counters(adapter)
        on_delivery = c.on_delivery if done is None else done.on_delivery
        self.producer.produce(self.topic_prefix + topic, event, key=key, on_delivery=on_delivery)

    def send_all(self, events: Iterable[Event], adapter: str) -> int:
        n = 0
        for e in events:
            self.send(e, adapter)
            n += 1
        return n

    def submit(self, events: list[Event], adapter: str) -> Future[None]:
        """Queue a batch; the future resolves when Kafka confirmed every event (or fails on the first error).

        Needs a thread serving delivery callbacks: ``start_polling()`` (the webhook API does it)."""
        batch = _Batch(len(events), self.counters(adapter))
        for e in events:
            self.send(e, adapter, batch)
        return batch.future

    def dead_letter(self, adapter: str, topic: str, value: bytes, headers: dict[str, str]) -> None:
        """Send an input record that could not be mapped to ``topic``.dlq, with headers saying where from and why.

        Delivery is confirmed by the next ``confirm()`` (flush)."""
        self.counters(adapter).dead.inc()
        pairs: list[tuple[str, str | bytes | None]] = [("content-type", b"text/plain; charset=utf-8")]
        pairs += [(k, v.encode()[:4000]) for k, v in headers.items()]
        self.producer.produce_raw(self.topic_prefix + topic + DLQ_SUFFIX, value, key=None, headers=pairs)

    def confirm(self, timeout: float = 120.0, adapter: str | None = None) -> None:
        """Wait until Kafka confirmed everything queued so far; raise DeliveryError if it did not.

        With ``adapter``, only that adapter's failures count (others sharing the producer report their own)."""
        self.producer.flush(timeout)
        with self._lock:
            if adapter is None:
                failures = list(self._failures.values())
                self._failures = {}
            else:
                failures = [self._failures.pop(adapter)] if adapter in self._failures else []
        if failures:
            count = sum(n for n, _ in failures)
            raise DeliveryError(f"{count} events not confirmed by Kafka; first: {failures[0][1]}")

    def pending(self) -> int:
        return len(self.producer)

    # -- background delivery callbacks (asyncio users) ----------------------------------------------
    def start_polling(self) -> None:
        if self._poller is None:
            self._stop.clear()
            self._poller = threading.Thread(target=self._poll_forever, name="ingest-kafka-delivery", daemon=True)
            self._poller.start()

    def _poll_forever(self) -> None:
        while not self._stop.is_set():
            self.producer.poll(0.05)

    def close(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout)
            self._poller = None
        with contextlib.suppress(DeliveryError):  # reported by the callers that waited on those events
            self.producer.flush(timeout)


class _Batch:
    """Counts confirmations of one batch; resolves a Future when all arrived or on the first error."""

    __slots__ = ("_counters", "_lock", "_remaining", "future", "on_delivery")

    def __init__(self, size: int, counters: _Counters) -> None:
        self.future: Future[None] = Future()
        self._remaining = size
        self._counters = counters
        self._lock = threading.Lock()
        self.on_delivery = self._delivered
        if size == 0:
            self.future.set_result(None)

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        self._counters.record(err, msg)
        with self._lock:
            if self.future.done():
                return
            if err is not None:
                self.future.set_exception(DeliveryError(str(err)))
                return
            self._remaining -= 1
            if self._remaining == 0:
                self.future.set_result(None)


def make_producer(bootstrap_servers: str, *, client_id: str = "callstream-ingest", wire_format: str = "json",
                  extra: dict[str, Any] | None = None) -> EventProducer:
    return EventProducer(bootstrap_servers, client_id=client_id, wire_format=wire_format, extra=extra)
