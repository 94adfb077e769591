"""AMI framing and event mapping."""

from __future__ import annotations

import gzip
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from callstream.agent.v1 import agent_events_pb2 as ae
from callstream.call.v1 import call_events_pb2 as ce
from callstream_ingest.domain.ami import (
    IGNORED_EVENTS,
    AmiEventMapper,
    AmiFramingError,
    AmiParser,
    Event,
    Message,
    login_action,
)
from callstream_ingest.domain.identity import AgentDirectory, caller_hash

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
        "not_ready",
        "offered",  # the abandon's call had no join in this stream: offered and queued from its HoldTime
        "queued",
    ]
    assert evs[0].envelope.occurred_at.ToMilliseconds() == 1700000000250
    assert isinstance(evs[1], ce.CallEvent) and evs[1].queued.position == 2
    assert isinstance(evs[3], ae.AgentEvent) and evs[3].agent_id == "PJSIP/100"
    assert isinstance(evs[6], ce.CallEvent) and evs[6].ended.hung_up_by == ce.CallEnded.PARTY_CALLER
    assert isinstance(evs[8], ae.AgentEvent) and evs[8].not_ready.reason == ae.NOT_READY_REASON_LUNCH
    assert m.summary.ignored_by_event["FullyBooted"] == 1
    assert m.summary.ignored_by_event["Hangup(not the caller's channel in a queue)"] == 1
    assert m.summary.ignored_by_event["Hangup(call already ended)"] == 1
    assert m.open_calls == 1  # the abandon waits for its channel's QUEUESTATUS or Hangup
    fresh = AmiEventMapper()
    again = [e for msg in AmiParser().feed(STREAM) for e in fresh.map(msg, now)]
    assert [e.envelope.event_id for e in again] == [e.envelope.event_id for e in evs]
    assert m.map({"Event": "AgentConnect", "Queue": "q", "Uniqueid": "1"}, now) == []
    assert m.map({"Event": "AgentConnect", "Timestamp": "x", "Uniqueid": "1"}, now) == []
    assert m.last_defect == "bad_timestamp"
    assert m.map({"Event": "AgentConnect", "Interface": "PJSIP/1", "Uniqueid": "1"}, now) == []
    assert m.summary.defects_by_reason == {"missing_agent": 1, "bad_timestamp": 1, "missing_queue": 1}
    m.map({"Event": "FullyBooted"}, now)
    assert m.last_defect is None


def test_login_action() -> None:
    assert login_action("u", "s") == (
        b"Action: Login\r\nActionID: login-1\r\nUsername: u\r\nSecret: s\r\nEvents: on\r\n\r\n"
    )
    with pytest.raises(ValueError):
        login_action("u", "s\r\nAction: Originate")


DATA = Path(__file__).parent / "data"
# 60 calls the test center's generator placed on a real Asterisk (deploy/local/asterisk, seed 7, 15 % blind
# transfers, 20 % with a maximum wait): the AMI events the mapper reads (every queue, agent, transfer, hold and
# hang-up event, the QUEUESTATUS variable; channel and dialplan chatter left out to keep the file small), and
# the queue_log Asterisk wrote in the same run.
RECORDED_AMI = DATA / "asterisk_60_calls.ami.gz"
RECORDED_QUEUE_LOG = DATA / "asterisk_60_calls.queue_log"


def queue_log_calls(path: Path) -> dict[str, set[str]]:
    """Call ids per verb, straight from Asterisk's queue_log lines (epoch|callid|queue|agent|verb|...)."""
    ids: dict[str, set[str]] = {}
    for line in path.read_text().splitlines():
        _, callid, _, _, verb, *_ = line.split("|")
        if callid not in ("NONE", "MANAGER"):
            ids.setdefault(verb, set()).add(callid)
    return ids


def test_a_recorded_asterisk_run_gives_the_calls_of_its_queue_log() -> None:
    """Each call of the run under the queue_log's own call id, with the outcome the queue_log gives it, ended
    exactly once; announced wrap-up, caller hash and agent identity on the way."""
    agents = AgentDirectory({"a1": "emp-0001", "b2": "emp-0102"})
    m = AmiEventMapper("ami-test", "salt", wrap_up_s={"sales": 2.0, "support": 1.0}, agents=agents)
    parser = AmiParser()
    events = [e for msg in parser.feed(gzip.decompress(RECORDED_AMI.read_bytes()))
              for e in m.map(msg, datetime(2026, 1, 1, tzinfo=UTC))]
    assert parser.malformed == [] and m.summary.defects_by_reason == {}
    calls = [e for e in events if isinstance(e, ce.CallEvent)]
    by_kind: dict[str, list[ce.CallEvent]] = {}
    for e in calls:
        by_kind.setdefault(e.WhichOneof("kind") or "", []).append(e)

    def ids(kind: str) -> set[str]:
        return {e.call_id for e in by_kind.get(kind, [])}

    log = queue_log_calls(RECORDED_QUEUE_LOG)
    assert ids("offered") == log["ENTERQUEUE"] and len(by_kind["offered"]) == 60
    assert ids("answered") == log["CONNECT"] and len(by_kind["answered"]) == len(log["CONNECT"])
    assert ids("abandoned") == log["ABANDON"] and len(by_kind["abandoned"]) == len(log["ABANDON"])
    assert ids("overflowed") == log["EXITWITHTIMEOUT"] == {"1796385792.85"}
    assert ids("transferred") == log["BLINDTRANSFER"] and len(by_kind["transferred"]) == 6
    assert len(by_kind["ring_no_answer"]) == 4 and ids("ring_no_answer") <= log["RINGNOANSWER"]
    # every call ends exactly once: an ended (answered, abandoned) or its overflow
    ends = Counter(e.call_id for e in by_kind["ended"] + by_kind["overflowed"])
    assert set(ends) == log["ENTERQUEUE"] and set(ends.values()) == {1}
    assert m.open_calls == 0
    # once the caller's channel hung up before app_queue published AgentComplete: no channel fields in it
    assert m.summary.ignored_by_event["AgentComplete(no channel: the caller's Hangup ended the call)"] == 1
    wrap = {e.ended.wrap_up_ms for e in by_kind["ended"] if e.call_id in log["CONNECT"]}
    assert wrap == {2000, 1000}
    assert {e.ended.wrap_up_ms for e in by_kind["ended"] if e.call_id in log["ABANDON"]} == {0}
    # the offer is the queue_log's ENTERQUEUE second (AMI has the microseconds)
    entered = {line.split("|")[1]: int(line.split("|")[0])
               for line in RECORDED_QUEUE_LOG.read_text().splitlines() if "|ENTERQUEUE|" in line}
    assert all(e.envelope.occurred_at.seconds == entered[e.call_id] for e in by_kind["offered"])
    callers = {line.split("|")[1]: line.split("|")[6]
               for line in RECORDED_QUEUE_LOG.read_text().splitlines() if "|ENTERQUEUE|" in line}
    assert all(e.offered.context.caller_hash == caller_hash("salt", callers[e.call_id]) for e in by_kind["offered"])
    answering = {e.answered.agent_id for e in by_kind["answered"]}
    assert {"emp-0001", "emp-0102"} <= answering and not answering & {"a1", "b2"}
    assert "b1" in agents.unknown
    pauses = [e for e in events if isinstance(e, ae.AgentEvent) and e.WhichOneof("kind") in ("not_ready", "ready")]
    assert [(e.agent_id, e.WhichOneof("kind"), e.not_ready.detail) for e in pauses] == [
        ("b4", "not_ready", "lunch"), ("b4", "ready", "")]
    # the agent's Unhold before each blind transfer had no Hold: no hold is invented
    assert "hold_ended" not in by_kind and m.summary.ignored_by_event["Unhold(not on hold)"] == 6


def frame(**headers: str) -> Message:
    return dict(headers)


JOIN = frame(Event="QueueCallerJoin", Timestamp="1700000000.5", Uniqueid="9.2", Linkedid="9.1", Queue="sales",
             CallerIDNum="+40721", Position="1", Channel="Local/sales@incoming-1;2")
CONNECT = frame(Event="AgentConnect", Timestamp="1700000004.25", Uniqueid="9.2", Linkedid="9.1", Queue="sales",
                Interface="Local/a1@agents/n", MemberName="a1", DestChannel="Local/a1@agents-3;1",
                DestUniqueid="9.3", HoldTime="4", RingTime="1", CallerIDNum="+40721")
COMPLETE = frame(Event="AgentComplete", Timestamp="1700000034.75", Uniqueid="9.2", Linkedid="9.1", Queue="sales",
                 Interface="Local/a1@agents/n", MemberName="a1", DestUniqueid="9.3", HoldTime="4", TalkTime="30",
                 Reason="agent", CallerIDNum="+40721")
NOW = datetime(2023, 11, 14, 22, 13, 40, tzinfo=UTC)


def kinds_and_ids(evs: list[Event]) -> list[tuple[str, str]]:
    return [(e.WhichOneof("kind") or "", e.envelope.event_id) for e in evs]


def test_a_call_learnt_again_after_a_restart_has_the_same_event_ids() -> None:
    """The adapter restarted while calls were in progress: a waiting call comes back from QueueStatus, an
    answered one from its AgentComplete's durations; the events that open them have the ids they had before,
    so the sessionizer drops the repeats. Times learnt from whole-second durations are within a second."""
    before = AmiEventMapper()
    seen = kinds_and_ids(before.map(JOIN, NOW) + before.map(CONNECT, NOW) + before.map(COMPLETE, NOW))

    after_status = AmiEventMapper()  # restarted while the call waited: QueueStatus lists it
    entry = frame(Event="QueueEntry", Queue="sales", Position="1", Uniqueid="9.2", CallerIDNum="+40721", Wait="3",
                  Channel="Local/sales@incoming-1;2")
    recovered = after_status.map(entry, datetime.fromtimestamp(1700000003.9, UTC))
    assert kinds_and_ids(recovered) == seen[:2]
    assert recovered[0].envelope.occurred_at.ToMilliseconds() == 1700000000900  # Wait is whole seconds
    assert after_status.summary.recovered_calls == 1
    assert after_status.map(entry, NOW) == [] and after_status.summary.recovered_calls == 1  # once
    assert kinds_and_ids(after_status.map(CONNECT, NOW))[-2:] == seen[3:5]  # answered, talking

    after_answer = AmiEventMapper()  # restarted while the call was answered: AgentComplete says it all
    learnt = after_answer.map(COMPLETE, NOW)
    assert [k for k, _ in kinds_and_ids(learnt)] == ["offered", "queued", "answered", "ended", "after_call_work"]
    assert {i for _, i in kinds_and_ids(learnt)} <= {i for _, i in seen}
    times = [e.envelope.occurred_at.ToMilliseconds() for e in learnt]
    assert times[:4] == [1700000000750, 1700000000750, 1700000004750, 1700000034750]


def test_abandon_and_timeout_are_told_apart_by_queuestatus() -> None:
    """app_queue sends QueueCallerAbandon both when the caller hangs up and when the queue's timeout ends the
    wait; the channel's QUEUESTATUS right after says TIMEOUT only for the latter."""
    def left(uniqueid: str, then: Message) -> list[str]:
        m = AmiEventMapper()
        m.map({**JOIN, "Uniqueid": uniqueid}, NOW)
        abandon = frame(Event="QueueCallerAbandon", Timestamp="1700000009", Uniqueid=uniqueid, Linkedid="9.1",
                        Queue="sales", Position="1", OriginalPosition="1", HoldTime="8")
        assert m.map(abandon, NOW) == []
        leave = frame(Event="QueueCallerLeave", Timestamp="1700000009", Uniqueid=uniqueid, Queue="sales")
        assert m.map(leave, NOW) == []
        evs = m.map({**then, "Uniqueid": uniqueid}, NOW)
        evs += m.map(frame(Event="Hangup", Timestamp="1700000010", Uniqueid=uniqueid, Linkedid="9.1"), NOW)
        assert m.open_calls == 0
        assert all(e.envelope.occurred_at.seconds == 1700000009 for e in evs)  # at the abandon, not later
        return [e.WhichOneof("kind") or "" for e in evs]

    timeout = frame(Event="VarSet", Timestamp="1700000009.1", Variable="QUEUESTATUS", Value="TIMEOUT")
    assert left("8.1", timeout) == ["overflowed"]
    other = frame(Event="VarSet", Timestamp="1700000009.1", Variable="CALLER_TALK", Value="2")
    assert left("8.2", other) == ["abandoned", "ended"]


def test_hold_transfer_and_hangup_end_a_call_once() -> None:
    m = AmiEventMapper(wrap_up_s={"sales": 2.5})
    evs = m.map(JOIN, NOW) + m.map(CONNECT, NOW)
    agent_channel = {"Channel": "Local/a1@agents-3;1", "Uniqueid": "9.3", "Linkedid": "9.1"}
    evs += m.map(frame(Event="Hold", Timestamp="1700000010", **agent_channel), NOW)
    evs += m.map(frame(Event="Hold", Timestamp="1700000011", **agent_channel), NOW)  # a repeat: one hold
    evs += m.map(frame(Event="Unhold", Timestamp="1700000015", **agent_channel), NOW)
    evs += m.map(frame(Event="AttendedTransfer", Timestamp="1700000020", Result="Success",
                       OrigTransfererUniqueid="9.3", OrigTransfererLinkedid="9.1", DestType="Bridge",
                       DestBridgeUniqueid="b-1"), NOW)
    evs += m.map({**COMPLETE, "Reason": "transfer"}, NOW)
    evs += m.map(frame(Event="Hangup", Timestamp="1700000040", Uniqueid="9.2", Linkedid="9.1"), NOW)
    calls = [e for e in evs if isinstance(e, ce.CallEvent)]
    assert [e.WhichOneof("kind") for e in calls] == ["offered", "queued", "ringing", "answered", "hold_started",
                                                     "hold_ended", "transferred", "ended"]
    assert calls[6].transferred.to_external == "BRIDGE:b-1"
    assert calls[6].transferred.kind == ce.CallTransferred.KIND_WARM
    assert (calls[7].ended.agent_id, calls[7].ended.wrap_up_ms) == ("a1", 2500)
    assert calls[2].envelope.occurred_at.ToMilliseconds() == 1700000003250  # RingTime 1 s before the answer
    assert m.open_calls == 0


def test_a_message_cut_off_by_a_dropped_connection_is_kept() -> None:
    p = AmiParser()
    assert p.feed(b"Asterisk Call Manager/13.0.0\r\nEvent: FullyBooted\r\n\r\nEvent: Hangup\r\nUniq") == [
        {"Event": "FullyBooted"}]
    assert p.unfinished() == b"Event: Hangup\r\nUniq"
    assert p.unfinished() == b""


def test_every_ignored_event_has_its_reason_in_the_docs() -> None:
    docs = (Path(__file__).parents[4] / "docs" / "ingest.md").read_text()
    section = docs[docs.index("## Asterisk AMI"):docs.index("## FreeSWITCH mod_callcenter")]
    assert [name for name in IGNORED_EVENTS if name not in section] == []


def test_a_ring_no_answer_published_after_the_caller_left_is_the_call_the_member_rang_for() -> None:
    """When the caller's channel is gone as the member's ring times out, app_queue publishes AgentRingNoAnswer
    without channel fields (as seen on the real Asterisk for AgentComplete): the member's last ring says whose."""
    m = AmiEventMapper()
    member = {"Queue": "sales", "Interface": "Local/rna@agents/n", "MemberName": "a9"}
    m.map(JOIN, NOW)
    m.map(frame(Event="AgentCalled", Timestamp="1700000001", Uniqueid="9.2", Linkedid="9.1", DestUniqueid="9.5",
                **member), NOW)
    rona = m.map(frame(Event="AgentRingNoAnswer", Timestamp="1700000003", RingTime="2000", **member), NOW)
    assert [(e.call_id, e.WhichOneof("kind")) for e in rona] == [("9.2", "ring_no_answer")]
    assert AmiEventMapper().map(frame(Event="AgentRingNoAnswer", RingTime="2000", **member), NOW) == []
