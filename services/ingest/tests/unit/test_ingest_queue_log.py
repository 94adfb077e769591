"""Asterisk queue_log mapper."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from callstream.agent.v1 import agent_events_pb2 as ae
from callstream.call.v1 import call_events_pb2 as ce
from callstream_ingest.domain.identity import AgentDirectory, AgentMapError, parse_agent_map
from callstream_ingest.domain.queue_log import LineDefect, QueueLogMapper

SAMPLE = Path(__file__).parent / "data" / "queue_log.sample"


def run(lines: list[str]) -> tuple[QueueLogMapper, list[ce.CallEvent | ae.AgentEvent], list[LineDefect]]:
    m = QueueLogMapper("q")
    out = list(m.map_lines(lines))
    evs = [o for o in out if not isinstance(o, LineDefect)]
    return m, evs, [o for o in out if isinstance(o, LineDefect)]


def test_sample_file() -> None:
    m, evs, defects = run(SAMPLE.read_text().splitlines())
    assert not defects
    assert m.summary.unknown_by_verb == Counter()
    assert m.summary.ignored_by_verb == Counter(
        {"QUEUESTART": 1, "CONFIGRELOAD": 1, "DID": 1, "SYSCOMPAT": 1, "INFO": 1, "RINGCANCELED": 1}
    )
    k = m.summary.events_by_kind
    assert k["offered"] == k["queued"] == 9
    assert k["answered"] == k["talking"] == 4
    assert k["abandoned"] == 1
    assert k["overflowed"] == 3
    assert k["transferred"] == 2
    assert k["ended"] == 6  # 2 COMPLETE*, ABANDON, 2 transfers out of the queue, AGENTDUMP
    assert k["ringing"] == 4  # every CONNECT says how long the member's phone rang
    assert k["logged_in"] == 2 and k["logged_out"] == 2
    assert k["not_ready"] == 2 and k["ready"] == 2
    assert k["queue_membership_changed"] == 2
    first = evs[0]
    assert isinstance(first, ae.AgentEvent) and first.agent_id == "SIP/1001"
    offered = next(e for e in evs if isinstance(e, ce.CallEvent) and e.HasField("offered"))
    assert offered.call_id == "1700000100.1"
    assert offered.offered.context.queue_id == "support"
    assert offered.offered.context.dialed_number == "5551000"
    assert offered.offered.context.caller_hash and offered.offered.context.caller_hash != "5551234"
    assert offered.envelope.occurred_at.seconds == 1700000100
    ab = next(e for e in evs if isinstance(e, ce.CallEvent) and e.HasField("abandoned"))
    assert ab.abandoned.position == 1 and ab.abandoned.queue_id == "support"
    rna = next(e for e in evs if isinstance(e, ce.CallEvent) and e.HasField("ring_no_answer"))
    assert rna.ring_no_answer.ring_ms == 15000 and rna.ring_no_answer.agent_id == "SIP/1002"
    reasons = [e.overflowed.reason for e in evs if isinstance(e, ce.CallEvent) and e.HasField("overflowed")]
    assert reasons == ["timeout", "key:5", "empty"]
    kinds = [e.transferred.kind for e in evs if isinstance(e, ce.CallEvent) and e.HasField("transferred")]
    assert kinds == [ce.CallTransferred.KIND_BLIND, ce.CallTransferred.KIND_WARM]
    pause = next(e for e in evs if isinstance(e, ae.AgentEvent) and e.HasField("not_ready"))
    assert pause.not_ready.reason == ae.NOT_READY_REASON_LUNCH
    ended = [e for e in evs if isinstance(e, ce.CallEvent) and e.HasField("ended")]
    assert [e.ended.hung_up_by for e in ended] == [
        ce.CallEnded.PARTY_CALLER,  # COMPLETECALLER
        ce.CallEnded.PARTY_CALLER,  # ABANDON
        ce.CallEnded.PARTY_AGENT,  # BLINDTRANSFER
        ce.CallEnded.PARTY_AGENT,  # ATTENDEDTRANSFER
        ce.CallEnded.PARTY_AGENT,  # COMPLETEAGENT
        ce.CallEnded.PARTY_AGENT,  # AGENTDUMP
    ]
    targets = [e.transferred.to_external for e in evs if isinstance(e, ce.CallEvent) and e.HasField("transferred")]
    assert targets == ["2000@from-internal", "BRIDGE:1700000900.11"]
    ring = next(e for e in evs if isinstance(e, ce.CallEvent) and e.HasField("ringing"))
    assert (ring.envelope.occurred_at.seconds, ring.ringing.agent_id) == (1700000110 - 5, "SIP/1001")
    # deterministic ids, all distinct
    _, again, _ = run(SAMPLE.read_text().splitlines())
    ids = [e.envelope.event_id for e in evs]
    assert ids == [e.envelope.event_id for e in again]
    assert len(set(ids)) == len(ids)


def test_broken_lines_and_unknown_verbs() -> None:
    m, evs, defects = run(
        [
            "garbage",
            "abc|1.1|q|NONE|ENTERQUEUE||123|1",
            "-5|1.1|q|NONE|ENTERQUEUE||123|1",
            "1700000000|NONE|q|NONE|ENTERQUEUE||123|1",
            "1700000000|1.1|q|NONE|CONNECT|1|2|3",
            "1700000000|NONE|q|NONE|PAUSE|x",
            "1700000000|1.1|q|NONE|FROBNICATE|x",
            "",
        ]
    )
    assert [(d.line, d.reason_code) for d in defects] == [
        (1, "field_count"),
        (2, "bad_timestamp"),
        (3, "bad_timestamp"),
        (4, "missing_call_id"),
        (5, "missing_agent"),
        (6, "missing_agent"),
    ]
    assert m.summary.unknown_by_verb == Counter({"FROBNICATE": 1})
    assert evs == []
    assert m.summary.lines == 7


def test_wrap_up_is_announced_and_agents_are_mapped_to_callstream_ids() -> None:
    lines = [
        "1700000100|1.1|sales|NONE|ENTERQUEUE||+40721|1",
        "1700000102|1.1|sales|a1|CONNECT|2|1.2|1",
        "1700000150|1.1|sales|a1|COMPLETEAGENT|2|48|1",
        "1700000200|2.1|support|NONE|ENTERQUEUE||+40722|1",
        "1700000203|2.1|support|zz|CONNECT|3|2.2|1",
        "1700000210|2.1|support|zz|BLINDTRANSFER|s|xfer-target|3|7|1",
    ]
    agents = AgentDirectory({"a1": "emp-0001"})
    m = QueueLogMapper("q", wrap_up_s={"sales": 2.0, "support": 1.5}, agents=agents)
    evs = [e for e in m.map_lines(lines) if not isinstance(e, LineDefect)]
    ended = [e.ended for e in evs if isinstance(e, ce.CallEvent) and e.HasField("ended")]
    assert [(e.agent_id, e.wrap_up_ms) for e in ended] == [("emp-0001", 2000), ("zz", 1500)]
    acw = [e.after_call_work.wrap_up_ms for e in evs if isinstance(e, ae.AgentEvent) and e.HasField("after_call_work")]
    assert acw == [2000, 1500]
    talking = [e.agent_id for e in evs if isinstance(e, ae.AgentEvent) and e.HasField("talking")]
    assert talking == ["emp-0001", "zz"]
    assert agents.unknown == Counter({"zz": 2})  # a line each: CONNECT, BLINDTRANSFER


def test_agent_map_file_errors_name_the_line() -> None:
    assert parse_agent_map(["switch_id,agent_id", "# comment", "a1, emp-1", "", "b1,emp-2"], "m.csv") == {
        "a1": "emp-1", "b1": "emp-2"}
    with pytest.raises(AgentMapError, match=r"m.csv:2: expected"):
        parse_agent_map(["a1,emp-1", "b1"], "m.csv")
    with pytest.raises(AgentMapError, match=r"m.csv:2: 'a1' is mapped twice"):
        parse_agent_map(["a1,emp-1", "a1,emp-2"], "m.csv")
