"""Webhook payload validation and conversion."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from callstream.agent.v1 import agent_events_pb2 as ae
from callstream.call.v1 import call_events_pb2 as ce
from callstream_core.event_checks import EventTimeWindow
from callstream_ingest.domain.webhook import MAX_JSON_DEPTH, parse_body

EID = "0b6b3f9e-8f6f-4c55-9d3c-2a7b1b0b9c11"


def call_ev(**over: Any) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "envelope": {
            "eventId": EID,
            "occurredAt": "2026-11-23T10:00:00.123+02:00",
            "source": "pbx-1",
            "schemaVersion": 1,
        },
        "callId": "c1",
        "answered": {"agentId": "a1", "queueId": "q1"},
    }
    ev.update(over)
    return ev


def agent_ev() -> dict[str, Any]:
    return {
        "envelope": {"eventId": EID, "occurredAt": "2026-11-23T08:00:00Z", "source": "pbx-1", "schemaVersion": 1},
        "agentId": "a1",
        "notReady": {"reason": "NOT_READY_REASON_LUNCH", "detail": "x"},
    }


def body(x: Any) -> bytes:
    return json.dumps(x).encode()


def test_single_object_converts_to_utc() -> None:
    r = parse_body(body(call_ev()))
    assert r.errors == []
    (ev,) = r.events
    assert isinstance(ev, ce.CallEvent)
    assert ev.call_id == "c1" and ev.answered.agent_id == "a1"
    assert ev.envelope.occurred_at.ToMilliseconds() % 1000 == 123
    assert ev.envelope.occurred_at.ToJsonString() == "2026-11-23T08:00:00.123Z"
    fine = {**call_ev()["envelope"], "occurredAt": "1969-12-31T23:59:59.001999-00:30"}  # truncated to the ms
    (ev,) = parse_body(body(call_ev(envelope=fine))).events
    assert ev.envelope.occurred_at.ToJsonString() == "1970-01-01T00:29:59.001Z"
    idle = {"envelope": agent_ev()["envelope"], "agentId": "a1", "ready": {}}  # an empty kind still sets it
    (ev,) = parse_body(body(idle)).events
    assert ev.WhichOneof("kind") == "ready"
    assert parse_body(body(call_ev(answered=5))).errors[0].path == "event.answered"


def test_array_and_ndjson() -> None:
    r = parse_body(body([call_ev(), agent_ev()]))
    assert r.errors == []
    assert isinstance(r.events[1], ae.AgentEvent)
    assert r.events[1].not_ready.reason == ae.NOT_READY_REASON_LUNCH
    nd = (json.dumps(call_ev()) + "\n\n" + json.dumps(agent_ev()) + "\n").encode()
    r2 = parse_body(nd, "application/x-ndjson")
    assert r2.errors == [] and len(r2.events) == 2


def test_errors_carry_paths() -> None:
    naive = call_ev()
    naive["envelope"] = {**naive["envelope"], "occurredAt": "2026-11-23T10:00:00"}
    bad_uuid = call_ev()
    bad_uuid["envelope"] = {**bad_uuid["envelope"], "eventId": "x" * 36}
    two_kinds = call_ev(offered={})
    no_key = call_ev()
    del no_key["callId"]
    wrong_kind = call_ev()
    del wrong_kind["answered"]
    wrong_kind["notReady"] = {}
    extra = call_ev(foo=1)
    bad_payload = call_ev(answered={"agentId": "a1", "nope": 1})
    no_env = call_ev()
    del no_env["envelope"]
    empty_key = call_ev(callId="")
    str_version = call_ev()
    str_version["envelope"] = {**str_version["envelope"], "schemaVersion": "1"}
    batch = [
        call_ev(),
        naive,
        bad_uuid,
        two_kinds,
        no_key,
        wrong_kind,
        extra,
        bad_payload,
        no_env,
        empty_key,
        str_version,
    ]
    r = parse_body(body(batch))
    assert len(r.events) == 1
    msgs = [str(e) for e in r.errors]
    assert "events[1].envelope.occurredAt: timestamp must carry a UTC offset" in msgs
    assert "events[2].envelope.eventId: must be a UUID" in msgs
    assert any(m.startswith("events[3]: exactly one event kind") for m in msgs)
    assert any(m.startswith("events[4]: exactly one of callId / agentId") for m in msgs)
    assert any(m.startswith("events[5].notReady: not a call event kind") for m in msgs)
    assert any(m.startswith("events[6].foo:") for m in msgs)
    assert any(m.startswith("events[7].answered:") for m in msgs)
    assert any(m.startswith("events[8].envelope:") for m in msgs)
    assert any(m.startswith("events[9].callId:") for m in msgs)
    assert any(m.startswith("events[10].envelope.schemaVersion:") for m in msgs)


def test_nan_and_caps_and_garbage() -> None:
    raw = json.dumps(call_ev(queued={"queueId": "q", "expectedWaitS": 1.0})).replace("1.0", "NaN")
    r = parse_body(raw.encode())
    assert r.events == [] and "NaN" in str(r.errors[0])
    assert parse_body(b"{not json").errors[0].path == "body"
    assert parse_body(b"\xff\xfe").errors[0].message == "not UTF-8"
    assert "exceeds" in parse_body(body([call_ev()] * 3), max_batch_bytes=100).errors[0].message
    assert "more than 2" in parse_body(body([call_ev()] * 3), max_events=2).errors[0].message
    big = call_ev(callId="c" * 100)
    r2 = parse_body(body([big, call_ev()]), max_event_bytes=300)
    assert len(r2.events) == 1 and r2.errors[0].path == "events[0]"
    assert parse_body(body([1])).errors[0].message == "event must be a JSON object"
    long_key = call_ev(callId="c" * 129)
    assert parse_body(body(long_key)).errors[0].path == "event.callId"


def test_event_time_window() -> None:
    now = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    window = EventTimeWindow(max_future_s=300, max_age_s=7 * 86400)

    def at(stamp: str) -> list[str]:
        r = parse_body(body(call_ev(envelope={**call_ev()["envelope"], "occurredAt": stamp})), window=window,
                       now=now)
        return [str(e) for e in r.errors]

    assert at("2026-11-23T09:04:59Z") == [] and at("2026-11-16T09:00:01Z") == []
    for stamp in ("9999-12-31T23:59:59.999Z", "2300-01-01T00:00:00Z", "2026-11-23T09:05:01Z"):
        (error,) = at(stamp)
        assert error.startswith("event.envelope.occurredAt: event time") and "ahead of the clock" in error
    for stamp in ("0001-01-01T00:00:00Z", "1970-01-01T00:00:00Z", "2026-11-16T08:59:59Z"):
        (error,) = at(stamp)
        assert error.startswith("event.envelope.occurredAt: event time"), error


def test_nesting_is_bounded_without_recursion() -> None:
    for depth in (MAX_JSON_DEPTH + 1, 1000, 100_000):
        for doc in ("[" * depth + "]" * depth, '{"a":' * depth + "1" + "}" * depth):
            (error,) = parse_body(doc.encode()).errors
            assert error.path == "body" and f"nested deeper than {MAX_JSON_DEPTH}" in error.message
        nd = parse_body(("[" * depth + "]" * depth + "\n").encode(), "application/x-ndjson")
        assert [e.path for e in nd.errors] == ["events[0]"]
    assert parse_body(body([[[[]]]])).errors[0].message == "event must be a JSON object"
