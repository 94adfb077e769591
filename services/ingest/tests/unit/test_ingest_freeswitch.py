"""FreeSWITCH event-socket framing and mod_callcenter mapping."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest

from callstream.agent.v1 import agent_events_pb2 as ae
from callstream.call.v1 import call_events_pb2 as ce
from callstream_ingest.domain.freeswitch import IGNORED_ACTIONS, CallcenterMapper, EslFramingError, EslParser
from callstream_ingest.domain.identity import AgentDirectory, caller_hash


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


# An event-socket session with mod_callcenter's events of every kind, written from the headers
# mod_callcenter.c puts in each (FreeSWITCH cannot be built here): eight callers of support@default and three
# agents, one of them Available (On Demand).
RECORDED = Path(__file__).parent / "data" / "mod_callcenter.esl"


def test_a_recorded_callcenter_session() -> None:
    agents = AgentDirectory({"1000@default": "emp-1000", "1002@default": "emp-1002"})
    m = CallcenterMapper("fs-test", "salt", agents=agents)
    parser = EslParser()
    frames = parser.feed(RECORDED.read_bytes())
    assert parser.unfinished() == b""
    headers = [h for f in frames if (h := f.event()) is not None]
    evs = [e for h in headers for e in m.map(h)]
    assert m.summary.defects_by_reason == {}
    # every action of the session is mapped or ignored with its reason
    actions = {h["CC-Action"] for h in headers}
    assert actions == {"agent-add", "agent-status-change", "agent-state-change", "agent-contact-change",
                       "member-queue-start", "member-queue-resume", "members-count", "agent-offering",
                       "bridge-agent-start", "bridge-agent-end", "bridge-agent-fail", "agent-max-no-answer",
                       "member-queue-end"}
    assert set(m.summary.ignored_by_action) <= set(IGNORED_ACTIONS) | {
        "bridge-agent-fail(ORIGINATOR_CANCEL)", "agent-state-change(Receiving)",
        "agent-state-change(In a queue call)", "agent-state-change(Idle after a call: wrap-up)"}

    calls: dict[str, list[ce.CallEvent]] = {}
    for e in evs:
        if isinstance(e, ce.CallEvent):
            calls.setdefault(e.call_id[-2:], []).append(e)

    def kinds(call: str) -> list[str]:
        return [e.WhichOneof("kind") or "" for e in calls[call]]

    assert kinds("0a") == ["offered", "queued", "ringing", "answered", "ended", "wrap_up_ended"]
    assert kinds("0b") == ["offered", "queued", "ringing", "abandoned", "ended"]
    assert kinds("0c") == ["offered", "queued", "ringing", "ring_no_answer", "ringing", "answered", "ended",
                           "wrap_up_ended"]
    reasons = {call: calls[call][-1].overflowed.reason for call in ("0d", "0e", "0f", "10")}
    assert reasons == {"0d": "timeout", "0e": "key:5", "0f": "break_out", "10": "no_agent"}
    assert kinds("11") == ["queued", "ringing", "answered", "ended", "wrap_up_ended"]

    def at(call: str, kind: str) -> float:
        return next(e.envelope.occurred_at.ToMilliseconds() for e in calls[call] if e.WhichOneof("kind") == kind) / 1e3

    # the Available agent takes calls again as the bridge ends; the on-demand one 25 s later, from Idle
    assert round(at("0a", "wrap_up_ended") - at("0a", "ended"), 3) == 0.02
    assert at("0c", "wrap_up_ended") - at("0c", "ended") == 25.0
    assert calls["0c"][-1].wrap_up_ended.agent_id == "emp-1002"
    rona = calls["0c"][3].ring_no_answer
    assert (rona.agent_id, rona.ring_ms) == ("1001@default", 15000)
    assert calls["0a"][0].offered.context.caller_hash == caller_hash("salt", "+40721000001")
    assert agents.unknown["1001@default"] > 0
    kinds_of_agents = [(e.agent_id, e.WhichOneof("kind")) for e in evs if isinstance(e, ae.AgentEvent)]
    assert ("1001@default", "not_ready") in kinds_of_agents and ("emp-1000", "logged_out") in kinds_of_agents
    assert len({e.envelope.event_id for e in evs}) == len(evs)


def test_every_ignored_action_has_its_reason_in_the_docs() -> None:
    docs = (Path(__file__).parents[4] / "docs" / "ingest.md").read_text()
    section = docs[docs.index("## FreeSWITCH mod_callcenter"):docs.index("## Settings (environment)")]
    assert [name.split("(")[0] for name in IGNORED_ACTIONS if name.split("(")[0] not in section] == []
