"""The KPI stream end to end with real parts: call and agent events on Kafka → Faust worker → ClickHouse
(chDB) → KPI API over HTTP, contacts on cc.contacts.v1 and a real-time snapshot on the wallboard stream."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from callstream.agent.v1 import agent_events_pb2
from callstream.call.v1 import call_events_pb2
from callstream_core.envelope import new_envelope
from callstream_core.kafka import EventProducer, apply_topics
from callstream_core.local_kafka import free_port
from callstream_kpi.config import KpiSettings
from callstream_kpi.entrypoints.worker import KpiWorker

pytestmark = pytest.mark.integration
TOKEN = "test-manager-token"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


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


def test_events_become_kpis(kafka_bootstrap: str, clickhouse_url: str) -> None:
    apply_topics(kafka_bootstrap)
    queue = f"q{uuid.uuid4().hex[:8]}"
    calls, agents = scenario(queue)
    producer = EventProducer(kafka_bootstrap, client_id="test")
    producer.produce_sync("cc.call-events.v1", [(e.call_id, e) for e in calls])
    producer.produce_sync("cc.agent-events.v1", [(e.agent_id, e) for e in agents])
    # A message that is not a CallEvent: it must land in the DLQ, not stop the worker.
    producer.produce_raw("cc.call-events.v1", b'{"no": "such field"}', key=b"junk", headers=[])
    producer.flush()

    port = free_port()
    settings = KpiSettings(kafka_bootstrap_servers=kafka_bootstrap, clickhouse_url=clickhouse_url,
                           clickhouse_database=f"kpi_{uuid.uuid4().hex[:8]}", http_port=port,
                           consumer_group=f"kpi-test-{uuid.uuid4().hex[:8]}", api_tokens=f"{TOKEN}:manager",
                           realtime_interval_s=0.5, batch_within_s=0.2)
    worker = KpiWorker(settings)
    seen: dict[str, Any] = {}

    async def until() -> None:
        deadline = time.monotonic() + 90
        params = {"from": T0.isoformat(), "to": (T0 + timedelta(hours=1)).isoformat(), "scope": "queue",
                  "id": queue, "grain": "hour"}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}",
                                     headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            while time.monotonic() < deadline:
                try:
                    response = await http.get("/v1/kpis", params=params)
                except httpx.TransportError:
                    response = None
                if response is not None and response.status_code == 200:
                    total = response.json()["total"]
                    if total["counters"]["answered"] == 2 and total["counters"]["abandoned"] == 2:
                        seen["total"] = total
                        realtime = (await http.get("/v1/realtime")).json()
                        if any(s.get("scope", {}).get("id") == queue for s in realtime["snapshots"]):
                            seen["realtime"] = realtime
                            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as anonymous:
                                seen["unauthenticated"] = (await anonymous.get("/v1/kpis", params=params)).status_code
                            seen["bad_request"] = (await http.get("/v1/kpis", params={**params, "grain": "decade"})
                                                   ).status_code
                            return
                await asyncio.sleep(0.3)  # polling the API with a deadline

    asyncio.run(worker.serve(until))
    assert "total" in seen, "KPIs never reached the API"
    total = seen["total"]
    counters = total["counters"]
    # kpis.md: offered excludes blocked; short abandon (5 s <= 20 s) excluded from SL and abandon rate.
    assert counters["received"] == 5 and counters["blocked"] == 1 and counters["offered"] == 4
    assert counters["short_abandons"] == 1 and counters["answered_within_t"] == 1
    assert total["service_level"] == pytest.approx(100 * 1 / (4 - 1))
    assert total["abandon_rate"] == pytest.approx(100 * (2 - 1) / (4 - 1))
    assert total["asa"] == pytest.approx((10 + 40) / 2)
    assert total["blocked_rate"] == pytest.approx(100 * 1 / 5)
    assert "realtime" in seen
    assert seen["unauthenticated"] == 401 and seen["bad_request"] == 422
