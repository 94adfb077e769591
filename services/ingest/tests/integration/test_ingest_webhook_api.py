"""The webhook API on a real uvicorn server (thread, free port) and the real broker."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from callstream_core.topics import AGENT_EVENTS, CALL_EVENTS
from callstream_devtools.local_kafka import free_port
from callstream_devtools.testing import serve_in_thread
from callstream_ingest.config import IngestSettings
from callstream_ingest.entrypoints.api import create_app
from callstream_ingest.service_layer.event_sink import EventSink, make_producer

TOKEN = "pbx-one-token-0123456789"
OTHER = "pbx-two-token-0123456789"


def settings(**kw: Any) -> IngestSettings:
    # The events below carry fixed 2026-11-02 dates: a window of 50 years behind the clock keeps them in it
    # (the window itself is tested with events dated relative to the clock).
    return IngestSettings(ingest_sources=f"{TOKEN}=pbx-one,{OTHER}=pbx-two", webhook_max_event_bytes=2048,
                          webhook_max_batch_bytes=64 * 1024, webhook_max_batch_events=100,
                          webhook_max_age_s=50 * 365 * 86400.0, callstream_env="development", **kw)


@pytest.fixture(scope="module")
def base_url(kafka_bootstrap: str) -> Iterator[str]:
    from callstream_core.kafka import apply_topics
    from callstream_core.topics import topic

    apply_topics(kafka_bootstrap, [topic(CALL_EVENTS), topic(AGENT_EVENTS)])
    sink = EventSink(make_producer(kafka_bootstrap))
    with serve_in_thread(create_app(settings(), sink)) as url:
        yield url
    sink.close()


def client(base_url: str, token: str = TOKEN) -> httpx.Client:
    return httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=60)


def call_ev(source: str, call_id: str, event_id: str | None = None) -> dict[str, Any]:
    return {"envelope": {"eventId": event_id or str(uuid.uuid4()), "occurredAt": "2026-11-02T09:30:12.250+01:00",
                         "source": source, "schemaVersion": 1},
            "callId": call_id, "answered": {"agentId": "agent-7", "queueId": "billing"}}


def agent_ev(source: str, agent_id: str) -> dict[str, Any]:
    return {"envelope": {"eventId": str(uuid.uuid4()), "occurredAt": "2026-11-02T09:30:13Z", "source": source,
                         "schemaVersion": 1}, "agentId": agent_id, "notReady": {"reason": "NOT_READY_REASON_BREAK"}}


def test_batch_is_produced_with_keys(base_url: str, consume: Callable[..., Any]) -> None:
    source = f"pbx-one/{uuid.uuid4().hex[:8]}"
    batch = [call_ev(source, f"call-{i}") for i in range(10)] + [agent_ev(source, "agent-7")]
    with client(base_url) as c:
        r = c.post("/v1/events", json=batch)
    assert r.status_code == 202, r.text
    assert r.json() == {"accepted": 11, "produced": 11, "duplicates": 0}
    calls = consume(CALL_EVENTS, 10, source=source)
    agents = consume(AGENT_EVENTS, 1, source=source)
    assert sorted(k for k, _, _ in calls) == sorted(f"call-{i}" for i in range(10))
    assert [k for k, _, _ in agents] == ["agent-7"]
    # the offset was normalized to UTC
    assert calls[0][1].envelope.occurred_at.ToJsonString() == "2026-11-02T08:30:12.250Z"


def test_single_event_and_ndjson(base_url: str, consume: Callable[..., Any]) -> None:
    source = f"pbx-one/{uuid.uuid4().hex[:8]}"
    with client(base_url) as c:
        one = c.post("/v1/events", json=call_ev(source, "solo"))
        nd = "\n".join(json.dumps(call_ev(source, f"nd-{i}")) for i in range(3)) + "\n"
        many = c.post("/v1/events", content=nd, headers={"Content-Type": "application/x-ndjson"})
    assert one.status_code == 202 and one.json()["produced"] == 1
    assert many.status_code == 202 and many.json()["produced"] == 3
    assert len(consume(CALL_EVENTS, 4, source=source)) == 4


def test_duplicates_are_acknowledged_once(base_url: str, consume: Callable[..., Any]) -> None:
    source = f"pbx-one/{uuid.uuid4().hex[:8]}"
    ev = call_ev(source, "dup-call")
    with client(base_url) as c:
        first = c.post("/v1/events", json=[ev, ev])
        again = c.post("/v1/events", json=ev)
    assert first.status_code == 202 and first.json() == {"accepted": 2, "produced": 1, "duplicates": 1}
    assert again.status_code == 202 and again.json() == {"accepted": 1, "produced": 0, "duplicates": 1}
    assert len(consume(CALL_EVENTS, 1, source=source)) == 1


def test_invalid_events_give_422_with_paths_and_nothing_is_produced(base_url: str,
                                                                    consume: Callable[..., Any]) -> None:
    source = f"pbx-one/{uuid.uuid4().hex[:8]}"
    bad = call_ev(source, "bad")
    bad["envelope"]["occurredAt"] = "2026-11-02T09:30:12"  # no offset
    unknown = call_ev(source, "bad2")
    unknown["answered"]["colour"] = "red"
    with client(base_url) as c:
        r = c.post("/v1/events", json=[call_ev(source, "good"), bad, unknown])
        broken = c.post("/v1/events", content=b"{not json", headers={"Content-Type": "application/json"})
        foreign = c.post("/v1/events", json=call_ev("pbx-two", "x"))
        empty = c.post("/v1/events", json=[])
        wrong_type = c.post("/v1/events", content=b"x", headers={"Content-Type": "text/plain"})
    assert r.status_code == 422
    locs = [d["loc"] for d in r.json()["detail"]]
    assert "events[1].envelope.occurredAt" in locs
    assert any(loc.startswith("events[2].answered") for loc in locs)
    assert broken.status_code == 422 and broken.json()["detail"][0]["loc"] == "body"
    assert foreign.status_code == 422 and foreign.json()["detail"][0]["loc"] == "event.envelope.source"
    assert empty.status_code == 422
    assert wrong_type.status_code == 415
    assert consume(CALL_EVENTS, 1, source=source, timeout=5) == []


def test_caps_give_413(base_url: str) -> None:
    source = "pbx-one"
    huge = call_ev(source, "big")
    huge["answered"]["queueId"] = "q" * 100
    huge["callId"] = "c" * 120
    huge["answered"]["agentId"] = "a" * 3000  # above the 2 KiB per-event cap
    with client(base_url) as c:
        one = c.post("/v1/events", json=huge)
        body = c.post("/v1/events", content=b"[" + b" " * (70 * 1024) + b"]",
                      headers={"Content-Type": "application/json"})
        count = c.post("/v1/events", json=[call_ev(source, f"n{i}") for i in range(101)])
    assert one.status_code == 413, one.text
    assert body.status_code == 413
    assert count.status_code == 413


def test_tokens(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=30) as c:
        assert c.post("/v1/events", json=call_ev("pbx-one", "x")).status_code == 401
        r = c.post("/v1/events", json=call_ev("pbx-one", "x"), headers={"Authorization": "Bearer nope-nope-nope"})
        assert r.status_code == 401
        assert c.get("/healthz").status_code == 200
        assert c.get("/metrics").status_code == 200
        spec = c.get("/openapi.json").json()
        assert "/v1/events" in spec["paths"]
        assert "application/x-ndjson" in spec["paths"]["/v1/events"]["post"]["requestBody"]["content"]


def test_kafka_down_gives_503_and_nothing_is_acknowledged() -> None:
    sink = EventSink(make_producer(f"127.0.0.1:{free_port()}"))
    app = create_app(settings(produce_timeout_s=1.0), sink)
    ev = call_ev("pbx-one", "down")
    with serve_in_thread(app) as url, client(url) as c:
        r = c.post("/v1/events", json=ev)
        assert r.status_code == 503, r.text
        assert r.headers["retry-after"] == "5"
        # not remembered as acknowledged: a retry is produced again, not counted as a duplicate
        again = c.post("/v1/events", json=ev)
        assert again.status_code == 503
    sink.close(0.5)


def test_event_times_outside_the_window_give_422_naming_the_field(base_url: str,
                                                                  consume: Callable[..., Any]) -> None:
    """issue 17 item 1: years 9999, 2300 and 0001 were accepted and produced; a wrong clock now gets a 422."""
    source = f"pbx-one/{uuid.uuid4().hex[:8]}"
    near = call_ev(source, "near")
    near["envelope"]["occurredAt"] = (datetime.now(UTC) + timedelta(seconds=60)).isoformat()
    with client(base_url) as c:
        answers = {}
        for label, stamp in [("9999", "9999-12-31T23:59:59Z"), ("2300", "2300-01-01T00:00:00Z"),
                             ("0001", "0001-01-01T00:00:00Z"),
                             ("hour-ahead", (datetime.now(UTC) + timedelta(hours=1)).isoformat())]:
            ev = call_ev(source, f"far-{label}")
            ev["envelope"]["occurredAt"] = stamp
            answers[label] = c.post("/v1/events", json=ev)
        ok = c.post("/v1/events", json=near)  # a minute ahead: inside the 5-minute default
    for label, r in answers.items():
        assert r.status_code == 422, (label, r.text)
        (detail,) = r.json()["detail"]
        assert detail["loc"] == "event.envelope.occurredAt", label
    assert "ahead of the clock" in answers["9999"].json()["detail"][0]["msg"]
    assert ok.status_code == 202, ok.text
    assert [k for k, _, _ in consume(CALL_EVENTS, 2, source=source, timeout=10)] == ["near"]


def test_deeply_nested_json_is_a_422_not_a_dropped_connection(base_url: str) -> None:
    """issue 17 item 7: 1,000 nested arrays raised RecursionError (a 500 and a dropped connection)."""
    with client(base_url) as c:
        nested_kind = {**call_ev("pbx-one", "deep"), "answered": {"agentId": json.loads("[" * 40 + "]" * 40)}}
        for body in (b"[" * 1000 + b"]" * 1000, b'{"a":' * 1000 + b"1" + b"}" * 1000,
                     json.dumps(nested_kind).encode()):
            r = c.post("/v1/events", content=body, headers={"Content-Type": "application/json"})
            assert r.status_code == 422, r.text
            assert "nested deeper than" in r.json()["detail"][0]["msg"]
