"""Call and agent events for the KPI stream's integration tests, and worker settings for a test."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from confluent_kafka import Consumer, TopicPartition

from callstream.agent.v1 import agent_events_pb2
from callstream.call.v1 import call_events_pb2
from callstream_core.envelope import new_envelope
from callstream_devtools.local_kafka import free_port

# re-exported: the end-to-end tests take their isolated topics from here with the rest of their scenario
from callstream_devtools.testing import isolated_topics as isolated_topics
from callstream_kpi.config import KpiSettings

TOKEN = "test-manager-token"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def read_dead_letters(bootstrap: str, name: str, expected: int,
                      timeout: float = 60.0) -> list[tuple[bytes | None, bytes, dict[str, str]]]:
    """(key, value, headers) of the records on the DLQ `name`, read until `expected` are there or the deadline."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"t-{uuid.uuid4()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    partitions = consumer.list_topics(name, timeout=10).topics[name].partitions
    consumer.assign([TopicPartition(name, p, 0) for p in partitions])
    found: list[tuple[bytes | None, bytes, dict[str, str]]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(found) < expected and time.monotonic() < deadline:
            for msg in consumer.consume(100, 0.5):
                if msg.error() is None:
                    found.append((msg.key(), msg.value() or b"",
                                  {k: (v or b"").decode() for k, v in msg.headers() or []}))
    finally:
        consumer.close()
    return found


async def poll_kpis(http: httpx.AsyncClient, params: dict[str, str],
                    ready: Callable[[dict[str, Any]], Awaitable[bool]], timeout_s: float) -> bool:
    """GET /v1/kpis with `params` until `ready(total)` is True (then True) or `timeout_s` passed (False);
    the worker's API may not serve yet at first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            response = await http.get("/v1/kpis", params=params)
        except httpx.TransportError:
            response = None
        if response is not None and response.status_code == 200 and await ready(response.json()["total"]):
            return True
        await asyncio.sleep(0.3)  # polling the API with a deadline
    return False


def worker_settings(kafka_bootstrap: str, clickhouse_url: str, topic_prefix: str = "") -> KpiSettings:
    """A worker of its own: its own consumer group, database and port; fast batches and ticks."""
    return KpiSettings(kafka_bootstrap_servers=kafka_bootstrap, clickhouse_url=clickhouse_url,
                       topic_prefix=topic_prefix,
                       clickhouse_database=f"kpi_{uuid.uuid4().hex[:8]}", http_port=free_port(),
                       consumer_group=f"kpi-test-{uuid.uuid4().hex[:8]}", api_tokens=f"{TOKEN}:manager",
                       realtime_interval_s=0.5, batch_within_s=0.2)


def call_event(call_id: str, at: datetime, kind: str, **fields: Any) -> call_events_pb2.CallEvent:
    event = call_events_pb2.CallEvent(call_id=call_id, envelope=new_envelope("test", at))
    body = getattr(event, kind)
    body.SetInParent()
    for name, value in fields.items():
        target = body
        *path, last = name.split("__")
        for part in path:
            target = getattr(target, part)
        setattr(target, last, value)
    return event


def agent_event(agent_id: str, at: datetime, kind: str) -> agent_events_pb2.AgentEvent:
    event = agent_events_pb2.AgentEvent(agent_id=agent_id, envelope=new_envelope("test", at))
    getattr(event, kind).SetInParent()
    return event


def scenario(queue: str) -> tuple[list[call_events_pb2.CallEvent], list[agent_events_pb2.AgentEvent]]:
    """Four calls: answered in 10 s, answered in 40 s, abandoned after 60 s, short abandon after 5 s;
    and one blocked call. Then a late call in the next interval moves the watermark past them all."""
    calls: list[call_events_pb2.CallEvent] = []

    def answered(call_id: str, start: datetime, wait: int, agent: str) -> None:
        calls.extend([
            call_event(call_id, start, "offered", context__queue_id=queue, context__caller_hash=call_id),
            call_event(call_id, start, "queued", queue_id=queue),
            call_event(call_id, start + timedelta(seconds=wait - 3), "ringing", agent_id=agent, queue_id=queue),
            call_event(call_id, start + timedelta(seconds=wait), "answered", agent_id=agent, queue_id=queue),
            call_event(call_id, start + timedelta(seconds=wait + 120), "ended", agent_id=agent),
            call_event(call_id, start + timedelta(seconds=wait + 150), "wrap_up_ended", agent_id=agent,
                       resolved=True),
        ])

    def abandoned(call_id: str, start: datetime, wait: int) -> None:
        calls.extend([
            call_event(call_id, start, "offered", context__queue_id=queue),
            call_event(call_id, start, "queued", queue_id=queue),
            call_event(call_id, start + timedelta(seconds=wait), "abandoned", queue_id=queue),
        ])

    answered(f"{queue}-1", T0 + timedelta(minutes=1), 10, f"{queue}-a1")
    answered(f"{queue}-2", T0 + timedelta(minutes=2), 40, f"{queue}-a2")
    abandoned(f"{queue}-3", T0 + timedelta(minutes=3), 60)
    abandoned(f"{queue}-4", T0 + timedelta(minutes=4), 5)
    calls.append(call_event(f"{queue}-5", T0 + timedelta(minutes=5), "blocked", context__queue_id=queue))
    calls.append(call_event(f"{queue}-6", T0 + timedelta(minutes=45), "offered", context__queue_id=queue))
    agents = [agent_event(f"{queue}-a1", T0, "logged_in"), agent_event(f"{queue}-a1", T0, "ready"),
              agent_event(f"{queue}-a1", T0 + timedelta(minutes=50), "logged_out")]
    return calls, agents
