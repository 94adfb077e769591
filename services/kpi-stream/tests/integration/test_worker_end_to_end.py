"""The KPI stream end to end with real parts: call and agent events on Kafka → Faust worker → ClickHouse
(chDB) → KPI API over HTTP, contacts on cc.contacts.v1 and a real-time snapshot on the wallboard stream."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from scenarios import T0, TOKEN, isolated_topics, poll_kpis, scenario, worker_settings

from callstream.routing.v1 import routing_pb2
from callstream_core.envelope import new_envelope
from callstream_core.kafka import EventProducer
from callstream_kpi.bootstrap import build_worker

pytestmark = pytest.mark.integration


def test_events_become_kpis(kafka_bootstrap: str, clickhouse_url: str) -> None:
    prefix = isolated_topics(kafka_bootstrap)  # a worker that sees only this test's events
    queue = f"q{uuid.uuid4().hex[:8]}"
    calls, agents = scenario(queue)
    producer = EventProducer(kafka_bootstrap, client_id="test")
    producer.produce_sync(prefix + "cc.call-events.v1", [(e.call_id, e) for e in calls])
    producer.produce_sync(prefix + "cc.agent-events.v1", [(e.agent_id, e) for e in agents])
    # The router's quote to a caller it queued in a queue without agents: that queue's expected wait.
    quoted = routing_pb2.RoutingDecision(envelope=new_envelope("routing", T0 + timedelta(minutes=45)),
                                         call_id=f"{queue}-7", queue_id=f"{queue}-vip")
    quoted.queued.position, quoted.queued.expected_wait_s = 1, 37.5
    producer.produce_sync(prefix + "cc.routing-decisions.v1", [(quoted.call_id, quoted)])
    # A message that is not a CallEvent: it must land in the DLQ, not stop the worker.
    producer.produce_raw(prefix + "cc.call-events.v1", b'{"no": "such field"}', key=b"junk", headers=[])
    producer.flush()

    settings = worker_settings(kafka_bootstrap, clickhouse_url, prefix)
    port = settings.http_port
    worker = build_worker(settings)
    seen: dict[str, Any] = {}

    async def until() -> None:
        params = {"from": T0.isoformat(), "to": (T0 + timedelta(hours=1)).isoformat(), "scope": "queue",
                  "id": queue, "grain": "hour"}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}",
                                     headers={"Authorization": f"Bearer {TOKEN}"}) as http:

            async def ready(total: dict[str, Any]) -> bool:
                if not (total["counters"]["answered"] == 2 and total["counters"]["abandoned"] == 2):
                    return False
                seen["total"] = total
                realtime = (await http.get("/v1/realtime")).json()
                by_queue = {s.get("scope", {}).get("id"): s for s in realtime["snapshots"]}
                if queue not in by_queue or by_queue.get(f"{queue}-vip", {}).get("expectedWaitS") != 37.5:
                    return False
                seen["realtime"] = realtime
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as anonymous:
                    seen["unauthenticated"] = (await anonymous.get("/v1/kpis", params=params)).status_code
                seen["bad_request"] = (await http.get("/v1/kpis", params={**params, "grain": "decade"})).status_code
                return True

            await poll_kpis(http, params, ready, timeout_s=240)

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
    assert "realtime" in seen, "the router's expected-wait quote never reached the wallboard's snapshots"
    assert seen["unauthenticated"] == 401 and seen["bad_request"] == 422
