"""FreeSWITCH event-socket framing and mod_callcenter mapping."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from callstream.agent.v1 import agent_events_pb2 as ae
from callstream.call.v1 import call_events_pb2 as ce
from callstream_ingest.domain.freeswitch import CallcenterMapper, EslFramingError, EslParser


def plain_event(**h: str) -> bytes:
    base = {"Event-Name": "CUSTOM", "Event-Subclass": "callcenter::info", **h}
    body = "".join(f"{k}: {quote(v)}\n" for k, v in base.items()).encode() + b"\n"
    return b"Content-Length: %d\nContent-Type: text/event-plain\n\n" % len(body) + body


def cc(action: str, ts: int, **h: str) -> bytes:
    return plain_event(**{"CC-Action": action, "Event-Date-Timestamp": str(ts), "CC-Queue": "support@default", **h})


CALL = {"CC-Member-Session-UUID": "m-1"}
AG = {"CC-Agent": "1000@default"}
STREAM = (
    b"Content-Type: auth/request\n\n"
    + b"Content-Type: command/reply\nReply-Text: +OK accepted\n\n"
    + cc("agent-status-change", 1_700_000_000_000_000, **AG, **{"CC-Agent-Status": "Available"})
    + cc("member-queue-start", 1_700_000_001_000_000, **CALL)
    + cc("members-count", 1_700_000_001_000_001, **{"CC-Count": "1"})
    + cc("agent-offering", 1_700_000_002_000_000, **CALL, **AG)
    + cc("bridge-agent-start", 1_700_000_003_500_000, **CALL, **AG)
    + cc("bridge-agent-end", 1_700_000_060_000_000, **CALL, **AG)
    + cc("member-queue-end", 1_700_000_060_000_001, **CALL, **{"CC-Cause": "Terminated"})
    + cc("member-queue-start", 1_700_000_100_000_000, **{"CC-Member-Session-UUID": "m-2"})
    + cc(
        "member-queue-end",
        1_700_000_130_000_000,
        **{"CC-Member-Session-UUID": "m-2", "CC-Cause": "Cancel", "CC-Cancel-Reason": "NONE"},
    )
    + cc("member-queue-start", 1_700_000_200_000_000, **{"CC-Member-Session-UUID": "m-3"})
    + cc(
        "member-queue-end",
        1_700_000_260_000_000,
        **{"CC-Member-Session-UUID": "m-3", "CC-Cause": "Cancel", "CC-Cancel-Reason": "TIMEOUT"},
    )
    + cc("agent-status-change", 1_700_000_300_000_000, **AG, **{"CC-Agent-Status": "On Break"})
)


def test_framing_incremental() -> None:
    whole = EslParser().feed(STREAM)
    assert whole[0].headers == {"Content-Type": "auth/request"}
    assert whole[0].event() is None
    for step in (1, 13, 500):
        p = EslParser()
        got = []
        for i in range(0, len(STREAM), step):
            got += p.feed(STREAM[i : i + step])
        assert got == whole
    ev = whole[3].event()
    assert ev is not None and ev["Event-Subclass"] == "callcenter::info"  # url-decoded
    assert ev["CC-Queue"] == "support@default"


def test_framing_errors() -> None:
    with pytest.raises(EslFramingError):
        EslParser().feed(b"Content-Length: x\n\n")
    with pytest.raises(EslFramingError):
        EslParser(max_frame_bytes=10).feed(b"Content-Length: 100\n\n")
    with pytest.raises(EslFramingError):
        EslParser().feed(b"nocolon\n\n")


def test_mapping() -> None:
    m = CallcenterMapper()
    evs = []
    for f in EslParser().feed(STREAM):
        h = f.event()
        if h is not None:
            evs += m.map(h)
    kinds = [e.WhichOneof("kind") for e in evs]
    assert kinds == [
        "ready",
        "offered",
        "queued",
        "ringing",
        "reserved",
        "answered",
        "talking",
        "ended",
        "after_call_work",
        "offered",
        "queued",
        "abandoned",
        "ended",
        "offered",
        "queued",
        "overflowed",
        "not_ready",
    ]
    assert evs[5].envelope.occurred_at.ToMilliseconds() == 1_700_000_003_500
    assert isinstance(evs[5], ce.CallEvent) and evs[5].call_id == "m-1" and evs[5].answered.agent_id == "1000@default"
    assert isinstance(evs[15], ce.CallEvent) and evs[15].overflowed.reason == "timeout"
    assert isinstance(evs[16], ae.AgentEvent) and evs[16].not_ready.reason == ae.NOT_READY_REASON_BREAK
    assert m.summary.ignored_by_action["members-count"] == 1
    assert m.summary.ignored_by_action["member-queue-end(Terminated)"] == 1
    assert len({e.envelope.event_id for e in evs}) == len(evs)


def test_mapping_defects() -> None:
    m = CallcenterMapper()
    base = {"Event-Subclass": "callcenter::info", "Event-Date-Timestamp": "1700000000000000"}
    assert m.map({**base, "CC-Action": "bridge-agent-start", "CC-Member-Session-UUID": "x"}) == []
    assert m.map({**base, "CC-Action": "member-queue-start"}) == []
    assert m.map({"Event-Subclass": "callcenter::info", "CC-Action": "member-queue-start"}) == []
    assert m.map({**base, "CC-Action": "agent-status-change", "CC-Agent": "a", "CC-Agent-Status": "Weird"}) == []
    assert m.summary.defects_by_reason == {
        "missing_agent": 1,
        "missing_call_id": 1,
        "bad_timestamp": 1,
        "unknown_agent_status": 1,
    }
