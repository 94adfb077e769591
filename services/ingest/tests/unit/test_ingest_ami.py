"""AMI framing and event mapping."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from callstream.agent.v1 import agent_events_pb2 as ae
from callstream.call.v1 import call_events_pb2 as ce
from callstream_ingest.domain.ami import AmiEventMapper, AmiFramingError, AmiParser, login_action

STREAM = (
    b"Asterisk Call Manager/9.0.0\r\n"
    b"Response: Success\r\nActionID: login-1\r\nMessage: Authentication accepted\r\n\r\n"
    b"Event: QueueCallerJoin\r\nTimestamp: 1700000000.250\r\nUniqueid: 1.1\r\nLinkedid: 1.1\r\n"
    b"Queue: sales\r\nPosition: 2\r\n\r\n"
    b"Event: AgentCalled\r\nTimestamp: 1700000001\r\nUniqueid: 1.1\r\nLinkedid: 1.1\r\nQueue: sales\r\n"
    b"Interface: PJSIP/100\r\n\r\n"
    b"Event: AgentConnect\r\nTimestamp: 1700000003\r\nUniqueid: 1.1\r\nLinkedid: 1.1\r\nQueue: sales\r\n"
    b"Interface: PJSIP/100\r\nHoldTime: 3\r\n\r\n"
    b"Event: AgentComplete\r\nTimestamp: 1700000060\r\nUniqueid: 1.1\r\nLinkedid: 1.1\r\nQueue: sales\r\n"
    b"Interface: PJSIP/100\r\nReason: caller\r\n\r\n"
    b"Event: Hangup\r\nTimestamp: 1700000060\r\nUniqueid: 1.2\r\nLinkedid: 1.1\r\n\r\n"
    b"Event: Hangup\r\nTimestamp: 1700000061\r\nUniqueid: 1.1\r\nLinkedid: 1.1\r\n\r\n"
    b"Event: QueueMemberPause\r\nTimestamp: 1700000070\r\nQueue: sales\r\nInterface: PJSIP/100\r\n"
    b"Paused: 1\r\nPausedReason: lunch\r\n\r\n"
    b"Event: QueueCallerAbandon\r\nTimestamp: 1700000080\r\nUniqueid: 2.1\r\nLinkedid: 2.1\r\n"
    b"Queue: sales\r\nPosition: 1\r\n\r\n"
    b"Event: FullyBooted\r\n\r\n"
)


def test_incremental_framing_any_split() -> None:
    whole = AmiParser().feed(STREAM)
    assert len(whole) == 10
    for step in (1, 7, 64):
        p = AmiParser()
        got = []
        for i in range(0, len(STREAM), step):
            got += p.feed(STREAM[i : i + step])
        assert got == whole
        assert p.banner == "Asterisk Call Manager/9.0.0"
    assert whole[1]["Queue"] == "sales"


def test_framing_errors() -> None:
    p = AmiParser()  # a bad block is set aside; the next message is still read
    assert p.feed(b"banner\r\nno colon here\r\n\r\nEvent: FullyBooted\r\n\r\n") == [{"Event": "FullyBooted"}]
    assert p.malformed == [(b"no colon here", "header line without ':': 'no colon here'")]
    p = AmiParser(max_message_bytes=50)
    with pytest.raises(AmiFramingError):
        p.feed(b"banner\r\n" + b"Key: " + b"x" * 100)


def test_mapping() -> None:
    m = AmiEventMapper()
    now = datetime(2026, 1, 1, tzinfo=UTC)
    evs = [e for msg in AmiParser().feed(STREAM) for e in m.map(msg, now)]
    kinds = [e.WhichOneof("kind") for e in evs]
    assert kinds == [
        "offered",
        "queued",
        "ringing",
        "reserved",
        "answered",
        "talking",
        "ended",
        "after_call_work",
        "ended",
        "not_ready",
        "abandoned",
    ]
    assert evs[0].envelope.occurred_at.ToMilliseconds() == 1700000000250
    assert isinstance(evs[1], ce.CallEvent) and evs[1].queued.position == 2
    assert isinstance(evs[3], ae.AgentEvent) and evs[3].agent_id == "PJSIP/100"
    assert isinstance(evs[6], ce.CallEvent) and evs[6].ended.hung_up_by == ce.CallEnded.PARTY_CALLER
    assert m.summary.ignored_by_event["FullyBooted"] == 1
    assert m.summary.ignored_by_event["Hangup(other leg)"] == 1
    again = [e for msg in AmiParser().feed(STREAM) for e in AmiEventMapper().map(msg, now)]
    assert [e.envelope.event_id for e in again] == [e.envelope.event_id for e in evs]
    assert m.map({"Event": "AgentConnect", "Queue": "q", "Uniqueid": "1"}, now) == []
    assert m.map({"Event": "AgentConnect", "Timestamp": "x", "Uniqueid": "1"}, now) == []
    assert m.last_defect == "bad_timestamp"
    assert m.summary.defects_by_reason == {"missing_agent": 1, "bad_timestamp": 1}
    m.map({"Event": "FullyBooted"}, now)
    assert m.last_defect is None


def test_login_action() -> None:
    assert login_action("u", "s") == (
        b"Action: Login\r\nActionID: login-1\r\nUsername: u\r\nSecret: s\r\nEvents: on\r\n\r\n"
    )
    with pytest.raises(ValueError):
        login_action("u", "s\r\nAction: Originate")
