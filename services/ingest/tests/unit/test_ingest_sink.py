"""EventSink against the real broker: routing and keys, confirm(), batches, Kafka down."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import REGISTRY

from callstream.agent.v1 import agent_events_pb2 as ae
from callstream.call.v1 import call_events_pb2 as ce
from callstream_core.kafka import DeliveryError
from callstream_core.topics import AGENT_EVENTS, CALL_EVENTS
from callstream_devtools.local_kafka import free_port
from callstream_ingest.domain.events import agent_event, call_event
from callstream_ingest.service_layer.event_sink import EventSink, make_producer

NOW = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


def _events(source: str, calls: int) -> list[ce.CallEvent | ae.AgentEvent]:
    out: list[ce.CallEvent | ae.AgentEvent] = []
    for i in range(calls):
        out.append(call_event(source, f"c{i}", f"call-{i}", NOW, "answered",
                              ce.CallAnswered(agent_id=f"agent-{i % 3}", queue_id="billing")))
        out.append(agent_event(source, f"a{i}", f"agent-{i % 3}", NOW, "talking",
                               ae.Talking(call_id=f"call-{i}", queue_id="billing")))
    return out


def test_sink_routes_by_type_and_keys_by_entity(ingest_kafka: str, consume: Callable[..., Any]) -> None:
    source = f"test-sink-{uuid.uuid4().hex[:8]}"
    sink = EventSink(make_producer(ingest_kafka))
    before = REGISTRY.get_sample_value("callstream_ingest_events_produced_total",
                                       {"adapter": "unit", "topic": CALL_EVENTS}) or 0.0
    assert sink.send_all(_events(source, 20), "unit") == 40
    sink.confirm(60)
    calls = consume(CALL_EVENTS, 20, source=source)
    agents = consume(AGENT_EVENTS, 20, source=source)
    assert len(calls) == 20 and len(agents) == 20
    assert all(key == value.call_id for key, value, _ in calls)
    assert all(key == value.agent_id for key, value, _ in agents)
    assert {k for k, _, _ in agents} == {"agent-0", "agent-1", "agent-2"}
    after = REGISTRY.get_sample_value("callstream_ingest_events_produced_total",
                                      {"adapter": "unit", "topic": CALL_EVENTS})
    assert after == before + 20
    assert REGISTRY.get_sample_value("callstream_ingest_produce_latency_seconds_count", {"adapter": "unit"})


def test_submit_resolves_after_confirmation(ingest_kafka: str) -> None:
    sink = EventSink(make_producer(ingest_kafka))
    sink.start_polling()
    try:
        future = sink.submit(_events(f"test-submit-{uuid.uuid4().hex[:6]}", 5), "unit")
        assert future.result(60) is None
        assert sink.submit([], "unit").result(1) is None
    finally:
        sink.close()


def test_confirm_raises_when_kafka_is_down() -> None:
    # Nothing listens on this port: the messages time out and confirm() must say so, never pass silently.
    sink = EventSink(make_producer(f"127.0.0.1:{free_port()}", extra={"message.timeout.ms": 1500}))
    sink.send_all(_events("test-down", 3), "unit-down")
    with pytest.raises(DeliveryError, match=r"^6 events not confirmed by Kafka; first: cc\."):
        sink.confirm(20)
    sink.confirm(1)  # reported once: nothing is pending and nothing failed since
    assert (REGISTRY.get_sample_value("callstream_ingest_delivery_failures_total", {"adapter": "unit-down"})
            or 0) >= 6


def test_submit_fails_when_kafka_is_down() -> None:
    sink = EventSink(make_producer(f"127.0.0.1:{free_port()}", extra={"message.timeout.ms": 1500}))
    sink.start_polling()
    try:
        with pytest.raises(DeliveryError):
            sink.submit(_events("test-down", 2), "unit-down").result(20)
    finally:
        sink.close(1)
