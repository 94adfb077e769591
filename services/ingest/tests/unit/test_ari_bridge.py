"""The ARI bridge's pure parts: a routed call's life (CallRouting's effects for each input) and the parsing of
ARI WebSocket messages. The router is played by hand-made decisions and results."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import pytest

from callstream.common.v1 import envelope_pb2
from callstream_ingest.adapters.ari_rest import AriRest
from callstream_ingest.config import AgentsFileError, read_agents
from callstream_ingest.domain import ari_messages as m
from callstream_ingest.domain.ari_routing import (
    Agent,
    CallRouting,
    Connect,
    DestroyBridge,
    Dial,
    Effect,
    Hangup,
    HoldCaller,
    Phase,
    Publish,
    Route,
)
from callstream_ingest.service_layer.ari_bridge import AriBridge
from callstream_ingest.service_layer.event_sink import EventSink
from callstream_routing import domain as d
from callstream_routing.grpc_router import GrpcRouter

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
AGENTS = [Agent("a1", "Local/a1@agents/n", ("sales",)), Agent("b1", "PJSIP/1001", ("support",))]


def routing() -> CallRouting:
    return CallRouting(AGENTS, caller_salt="test-salt")


def commands(effects: list[Effect]) -> list[d.Command]:
    return [e.command for e in effects if isinstance(e, Route)]


def kinds(effects: list[Effect]) -> list[str]:
    return [e.event.WhichOneof("kind") or "" for e in effects if isinstance(e, Publish)]


def assigned(call_id: str, agent_id: str = "a1", reservation: str = "r1") -> d.Decision:
    return d.Decision(call_id=call_id, queue_id="sales", at=0.0, outcome=d.Assigned(
        agent_id=agent_id, reservation_id=reservation, reservation_expires_at=1_000.0))


def ringing(r: CallRouting, call_id: str = "c1") -> Dial:
    r.caller_entered(call_id, "sales", "+40720000001", NOW)
    dial = [e for e in r.decided(assigned(call_id), NOW) if isinstance(e, Dial)]
    assert len(dial) == 1
    return dial[0]


def test_a_caller_is_held_and_offered_to_the_router() -> None:
    effects = routing().caller_entered("c1", "sales", "+40720000001", NOW)
    assert effects[0] == HoldCaller("cs-c1", "c1")
    (offer,) = commands(effects)
    assert isinstance(offer, d.OfferCall)
    assert (offer.call_id, offer.queue_id, offer.command_id) == ("c1", "sales", "ari:c1:offer")
    assert offer.caller_hash and "+4072" not in offer.caller_hash  # hashed, never in clear
    assert kinds(effects) == ["offered", "queued"]


def test_the_same_stasis_start_twice_offers_once() -> None:
    r = routing()
    r.caller_entered("c1", "sales", "", NOW)
    assert r.caller_entered("c1", "sales", "", NOW) == []


def test_assignment_rings_the_agents_endpoint_with_the_caller_as_originator() -> None:
    r = routing()
    dial = ringing(r)
    assert dial == Dial("c1-agent-1", "Local/a1@agents/n", "c1", 1_000.0)
    assert r.calls["c1"].phase is Phase.RINGING
    # The same decision again (the reply and the stream both carry it) changes nothing.
    assert r.decided(assigned("c1"), NOW) == []


def test_answer_is_accepted_before_caller_and_agent_are_bridged() -> None:
    r = routing()
    dial = ringing(r)
    (accept,) = commands(r.agent_answered(dial.channel_id, NOW))
    assert isinstance(accept, d.AcceptReservation) and accept.reservation_id == "r1"
    assert r.calls["c1"].phase is Phase.ANSWERING
    assert r.result(accept, d.Result(accepted=True), NOW) == [Connect("cs-c1", dial.channel_id, "c1")]
    assert r.calls["c1"].phase is Phase.ANSWERING  # until Asterisk says they are together
    assert kinds(r.agent_joined(dial.channel_id, ("c1", dial.channel_id), NOW)) == ["answered", "talking"]
    assert r.calls["c1"].phase is Phase.BRIDGED


def test_an_agent_joining_a_bridge_the_caller_already_left_is_no_answer_but_an_abandon() -> None:
    r = routing()
    dial = ringing(r)
    (accept,) = commands(r.agent_answered(dial.channel_id, NOW))
    r.result(accept, d.Result(accepted=True), NOW)
    effects = r.agent_joined(dial.channel_id, (dial.channel_id,), NOW)
    assert kinds(effects) == ["abandoned"] and "c1" not in r.calls


def test_a_caller_gone_as_the_agent_answers_is_abandoned_and_the_agent_freed() -> None:
    r = routing()
    dial = ringing(r)
    (accept,) = commands(r.agent_answered(dial.channel_id, NOW))
    r.result(accept, d.Result(accepted=True), NOW)
    effects = r.connect_failed("c1", NOW)
    assert Hangup(dial.channel_id) in effects and kinds(effects) == ["abandoned"]
    assert [type(c) for c in commands(effects)] == [d.EndCall] and "c1" not in r.calls


def test_an_accept_the_router_refuses_hangs_up_the_agent_and_the_caller_waits() -> None:
    r = routing()
    dial = ringing(r)
    (accept,) = commands(r.agent_answered(dial.channel_id, NOW))
    effects = r.result(accept, d.Result(accepted=False, reason="reservation not active"), NOW)
    assert Hangup(dial.channel_id) in effects and not [e for e in effects if isinstance(e, Connect)]
    assert r.calls["c1"].phase is Phase.WAITING


def test_no_answer_by_the_deadline_is_a_ring_no_answer_and_the_next_assignment_rings_again() -> None:
    r = routing()
    dial = ringing(r)
    effects = r.ring_deadline(dial.channel_id, NOW)
    assert effects[0] == Hangup(dial.channel_id)
    (timeout,) = commands(effects)
    assert isinstance(timeout, d.TimeoutReservation) and timeout.reservation_id == "r1"
    assert kinds(effects) == ["ring_no_answer"]
    # The router's next decision for the call (another agent) is dialled on a new channel.
    next_dial = [e for e in r.result(timeout, d.Result(accepted=True, decisions=(
        assigned("c1", "a1", "r2"),)), NOW) if isinstance(e, Dial)]
    assert [x.channel_id for x in next_dial] == ["c1-agent-2"]
    # The first channel's late hangup and a late deadline are not the call's any more.
    assert r.channel_left(dial.channel_id, NOW) == [] and r.ring_deadline(dial.channel_id, NOW) == []


def test_an_agent_gone_between_accept_and_joining_ends_the_call_with_the_router() -> None:
    r = routing()
    dial = ringing(r)
    (accept,) = commands(r.agent_answered(dial.channel_id, NOW))
    r.result(accept, d.Result(accepted=True), NOW)
    effects = r.channel_left(dial.channel_id, NOW)
    assert [type(c) for c in commands(effects)] == [d.EndCall]  # a reject would be refused: the router accepted
    assert Hangup("c1") in effects and "c1" not in r.calls


def test_the_router_reassigning_a_ringing_call_hangs_up_the_first_agent() -> None:
    r = routing()
    dial = ringing(r)
    effects = r.decided(assigned("c1", "a1", "r2"), NOW)
    assert effects[0] == Hangup(dial.channel_id)
    assert [e.channel_id for e in effects if isinstance(e, Dial)] == ["c1-agent-2"]


def test_a_failed_agent_channel_is_rejected_as_busy() -> None:
    r = routing()
    dial = ringing(r)
    effects = r.channel_left(dial.channel_id, NOW)
    (reject,) = commands(effects)
    assert isinstance(reject, d.RejectReservation) and reject.busy
    assert Hangup(dial.channel_id) not in effects  # it is gone already
    assert r.calls["c1"].phase is Phase.WAITING


@pytest.mark.parametrize("ring_first", [False, True])
def test_a_caller_who_hangs_up_before_being_bridged_abandons(ring_first: bool) -> None:
    r = routing()
    if ring_first:
        dial = ringing(r)
    else:
        r.caller_entered("c1", "sales", "", NOW)
    effects = r.channel_left("c1", NOW)
    assert isinstance(commands(effects)[0], d.CancelCall)
    assert kinds(effects) == ["abandoned"]
    assert DestroyBridge("cs-c1") in effects and "c1" not in r.calls
    assert (Hangup(dial.channel_id) in effects) if ring_first else not [e for e in effects if isinstance(e, Hangup)]


def test_an_assignment_for_a_caller_already_gone_is_cancelled() -> None:
    r = routing()
    (cancel,) = commands(r.decided(assigned("gone"), NOW))
    assert isinstance(cancel, d.CancelCall) and cancel.call_id == "gone"


@pytest.mark.parametrize(("who_hangs_up", "party"), [("caller", "PARTY_CALLER"), ("agent", "PARTY_AGENT")])
def test_the_end_of_the_conversation_ends_the_call_and_starts_wrap_up(who_hangs_up: str, party: str) -> None:
    r = routing()
    dial = ringing(r)
    (accept,) = commands(r.agent_answered(dial.channel_id, NOW))
    r.result(accept, d.Result(accepted=True), NOW)
    r.agent_joined(dial.channel_id, ("c1", dial.channel_id), NOW)
    leaving, other = ("c1", dial.channel_id) if who_hangs_up == "caller" else (dial.channel_id, "c1")
    effects = r.channel_left(leaving, NOW)
    assert effects[0] == Hangup(other)
    (end,) = commands(effects)
    assert isinstance(end, d.EndCall) and end.agent_id == "a1"
    ended = [e.event for e in effects if isinstance(e, Publish) and e.event.WhichOneof("kind") == "ended"]
    assert ended[0].ended.hung_up_by == ended[0].ended.Party.Value(party)
    assert kinds(effects) == ["ended", "after_call_work"] and "c1" not in r.calls
    assert r.channel_left(other, NOW) == []  # the other party's hangup, which the bridge caused


def test_an_agent_the_bridge_cannot_ring_is_rejected() -> None:
    r = routing()
    r.caller_entered("c1", "sales", "", NOW)
    (reject,) = commands(r.decided(assigned("c1", "z9"), NOW))
    assert isinstance(reject, d.RejectReservation) and reject.agent_id == "z9"
    assert r.calls["c1"].phase is Phase.WAITING


def test_overflow_to_a_queue_keeps_the_caller_and_a_refusal_releases_them() -> None:
    r = routing()
    r.caller_entered("c1", "sales", "", NOW)
    r.caller_entered("c2", "sales", "", NOW)
    moved = r.decided(d.Decision(call_id="c1", queue_id="sales", at=0.0, outcome=d.Overflowed(
        destination=d.OverflowDestination.QUEUE, to_queue_id="support", reason="max wait")), NOW)
    assert kinds(moved) == ["overflowed"] and r.calls["c1"].queue_id == "support"
    refused = r.decided(d.Decision(call_id="c2", queue_id="sales", at=0.0, outcome=d.Rejected(reason="full")), NOW)
    assert Hangup("c2") in refused and "c2" not in r.calls


def to_callback(call_id: str) -> d.Decision:
    return d.Decision(call_id=call_id, queue_id="sales", at=0.0, outcome=d.Overflowed(
        destination=d.OverflowDestination.CALLBACK, reason="max wait"))


def call_ids(effects: list[Effect]) -> set[str]:
    return {e.event.call_id for e in effects if isinstance(e, Publish) and e.event.HasField("envelope")
            and e.event.WhichOneof("kind") not in (None, "reserved", "talking", "after_call_work")}


def test_a_callback_releases_the_caller_then_rings_the_agent_and_dials_the_caller_back() -> None:
    r = CallRouting(AGENTS, caller_salt="test-salt", callback_endpoint="Local/{number}@callbacks/n",
                    callback_ring_s=20)
    r.caller_entered("c1", "sales", "+40720000001", NOW)
    released = r.decided(to_callback("c1"), NOW)
    # The inbound call ends as a callback; the callback is offered as a call of its own.
    assert kinds(released) == ["overflowed", "offered", "queued"]
    assert [e.event.call_id for e in released if isinstance(e, Publish)] == ["c1", "c1-callback", "c1-callback"]
    offered = [e.event for e in released if isinstance(e, Publish)][1].offered
    assert offered.context.channel == envelope_pb2.CHANNEL_CALLBACK and "+4072" not in offered.context.caller_hash
    assert Hangup("c1") in released and DestroyBridge("cs-c1") in released and not commands(released)
    assert r.calls["c1"].phase is Phase.CALLBACK
    assert r.channel_left("c1", NOW) == []  # the released channel's hangup: no abandon
    # The router assigns the callback: the agent is rung with no originator (the caller is not on the line).
    (dial,) = [e for e in r.decided(assigned("c1"), NOW) if isinstance(e, Dial)]
    assert dial == Dial("c1-agent-1", "Local/a1@agents/n", "", 1_000.0)
    (accept,) = commands(r.agent_answered(dial.channel_id, NOW))
    calling = r.result(accept, d.Result(accepted=True), NOW)
    assert calling == [HoldCaller("cs-c1", "c1-agent-1"),
                       Dial("c1-callback", "Local/+40720000001@callbacks/n", "c1-agent-1",
                            NOW.timestamp() + 20, "callback")]
    assert r.calls["c1"].phase is Phase.CALLING_BACK
    assert r.agent_joined("c1-agent-1", ("c1-agent-1",), NOW) == []  # the agent alone, on hold
    assert r.called_back("c1-callback", NOW) == [Connect("cs-c1", "c1-callback", "c1")]
    answered = r.agent_joined("c1-callback", ("c1-agent-1", "c1-callback"), NOW)
    assert kinds(answered) == ["answered", "talking"] and call_ids(answered) == {"c1-callback"}
    assert r.counts.called_back == 1 and r.calls["c1"].phase is Phase.BRIDGED
    ended = r.channel_left("c1-callback", NOW)
    assert Hangup("c1-agent-1") in ended and kinds(ended) == ["ended", "after_call_work"]
    assert [type(c) for c in commands(ended)] == [d.EndCall] and "c1" not in r.calls


@pytest.mark.parametrize("how", ["caller_busy", "no_answer_in_time", "agent_hangs_up"])
def test_a_callback_that_does_not_reach_the_caller_ends_with_the_router(how: str) -> None:
    r = CallRouting(AGENTS, caller_salt="test-salt", callback_endpoint="PJSIP/{number}@trunk")
    r.caller_entered("c1", "sales", "+40720000001", NOW)
    r.decided(to_callback("c1"), NOW)
    (dial,) = [e for e in r.decided(assigned("c1"), NOW) if isinstance(e, Dial)]
    (accept,) = commands(r.agent_answered(dial.channel_id, NOW))
    r.result(accept, d.Result(accepted=True), NOW)
    effects = {"caller_busy": lambda: r.channel_left("c1-callback", NOW),
               "no_answer_in_time": lambda: r.ring_deadline("c1-callback", NOW),
               "agent_hangs_up": lambda: r.channel_left("c1-agent-1", NOW)}[how]()
    assert Hangup("c1-callback") in effects and Hangup("c1-agent-1") in effects
    assert [type(c) for c in commands(effects)] == [d.EndCall] and kinds(effects) == ["abandoned"]
    assert call_ids(effects) == {"c1-callback"} and "c1" not in r.calls


def test_a_ring_no_answer_on_a_callback_keeps_it_a_callback() -> None:
    r = CallRouting(AGENTS, caller_salt="test-salt", callback_endpoint="PJSIP/{number}@trunk")
    r.caller_entered("c1", "sales", "+40720000001", NOW)
    r.decided(to_callback("c1"), NOW)
    (dial,) = [e for e in r.decided(assigned("c1"), NOW) if isinstance(e, Dial)]
    assert kinds(r.ring_deadline(dial.channel_id, NOW)) == ["ring_no_answer"]
    assert r.calls["c1"].phase is Phase.CALLBACK


def test_without_a_callback_endpoint_a_callback_releases_the_caller() -> None:
    r = routing()
    r.caller_entered("c1", "sales", "+40720000001", NOW)
    effects = r.decided(to_callback("c1"), NOW)
    assert kinds(effects) == ["overflowed"] and Hangup("c1") in effects and "c1" not in r.calls


def test_after_a_reconnect_calls_asterisk_no_longer_has_end_and_unknown_callers_are_offered() -> None:
    r = routing()
    r.caller_entered("waiting", "sales", "", NOW)
    r.caller_entered("kept", "sales", "", NOW)
    dial = ringing(r, "ringing")
    r.caller_entered("lost-agent", "support", "", NOW)
    (lost_dial,) = [e for e in r.decided(assigned("lost-agent", "b1", "r2"), NOW) if isinstance(e, Dial)]
    present = {"kept": (("sales",), ""), "lost-agent": (("support",), ""),
               "new": (("support",), "+40720000009"), "stray-agent-1": (("agent",), "")}
    effects = r.reconcile(present, {"cs-kept", "cs-lost-agent", "cs-gone"}, NOW)
    # Asterisk has neither the waiting caller nor the ringing one (nor its agent): both abandoned, cancelled.
    cancelled = {c.call_id for c in commands(effects) if isinstance(c, d.CancelCall)}
    assert cancelled == {"waiting", "ringing"} and Hangup(dial.channel_id) in effects
    # The caller is there but its agent's channel is not: as if it failed (rejected busy), the caller waits on.
    (reject,) = [c for c in commands(effects) if isinstance(c, d.RejectReservation)]
    assert reject.call_id == "lost-agent" and Hangup(lost_dial.channel_id) not in effects
    # A caller in the app the bridge did not hold is offered; a stray agent channel hung up; a bridge of no
    # call destroyed.
    assert HoldCaller("cs-new", "new") in effects and "new" in r.calls
    assert Hangup("stray-agent-1") in effects and DestroyBridge("cs-gone") in effects
    assert set(r.calls) == {"kept", "lost-agent", "new"}
    assert r.counts.reconciled == {"ended": 2, "agent_lost": 1, "offered": 1, "hung_up": 1, "bridge_destroyed": 1}
    # Re-reading the same channels again changes nothing.
    present.pop("stray-agent-1")
    assert r.reconcile(present, {"cs-kept", "cs-lost-agent"}, NOW) == []


def test_agents_log_in_and_become_ready_at_start() -> None:
    effects = routing().log_in_agents(NOW)
    actions = [(c.agent_id, c.action) for c in commands(effects) if isinstance(c, d.SetAgentState)]
    assert actions == [("a1", d.AgentAction.LOGIN), ("a1", d.AgentAction.READY),
                       ("b1", d.AgentAction.LOGIN), ("b1", d.AgentAction.READY)]
    login = commands(effects)[0]
    assert isinstance(login, d.SetAgentState) and [q.queue_id for q in login.queues] == ["sales"]
    assert kinds(effects) == ["logged_in", "ready", "logged_in", "ready"]


# -- messages ------------------------------------------------------------------------------------------------------


def stasis_start(channel_id: str, args: list[str], number: str = "+40720000001") -> str:
    return json.dumps({"type": "StasisStart", "timestamp": "2026-12-04T12:00:01.250+0000", "args": args,
                       "channel": {"id": channel_id, "caller": {"name": "Caller", "number": number}}})


def test_stasis_start_of_a_caller_and_of_an_agent_channel() -> None:
    caller = m.parse(stasis_start("1.1", ["sales"]), NOW)
    assert caller == m.CallerEntered("1.1", "sales", "+40720000001", datetime(2026, 12, 4, 12, 0, 1, 250_000,
                                                                                  tzinfo=UTC))
    assert isinstance(m.parse(stasis_start("1.1-agent-1", ["agent"]), NOW), m.AgentAnswered)
    assert isinstance(m.parse(stasis_start("1.1-callback", ["callback"]), NOW), m.CallbackAnswered)


def test_a_channel_entering_a_bridge_with_the_bridges_channels() -> None:
    raw = json.dumps({"type": "ChannelEnteredBridge", "channel": {"id": "1.1-agent-1"},
                      "bridge": {"id": "cs-1.1", "channels": ["1.1", "1.1-agent-1"]}})
    assert m.parse(raw, NOW) == m.EnteredBridge("1.1-agent-1", ("1.1", "1.1-agent-1"), NOW)


@pytest.mark.parametrize("kind", ["StasisEnd", "ChannelDestroyed"])
def test_a_channel_leaving(kind: str) -> None:
    assert m.parse(json.dumps({"type": kind, "channel": {"id": "1.1"}}), NOW) == m.ChannelLeft("1.1", NOW)


@pytest.mark.parametrize(("raw", "reason"), [
    ("not json {", "not_json"),
    ("[1, 2]", "no_type"),
    ('{"type": 7}', "no_type"),
    ('{"type": "StasisStart", "args": ["sales"]}', "no_channel_id"),
    ('{"type": "ChannelDestroyed", "channel": {"id": ""}}', "no_channel_id"),
    (stasis_start("1.1", []), "stasis_start_without_queue"),
    (b"\xff\xfe", "not_json"),
    ('{"type": "ChannelEnteredBridge", "channel": {"id": "1.1"}, "bridge": {"id": "b"}}', "no_bridge_channels"),
])
def test_messages_the_bridge_does_not_understand_are_malformed_with_a_reason(raw: str | bytes, reason: str) -> None:
    parsed = m.parse(raw, NOW)
    assert isinstance(parsed, m.Malformed) and parsed.reason == reason


def test_the_channels_in_the_app_from_get_channels() -> None:
    channels = [
        {"id": "1.1", "caller": {"number": "+40720000001"},
         "dialplan": {"context": "routed", "app_name": "Stasis", "app_data": "callstream,sales"}},
        {"id": "1.1-agent-1", "caller": {"number": ""},
         "dialplan": {"app_name": "Stasis", "app_data": "callstream,agent"}},
        {"id": "2.1", "dialplan": {"app_name": "Queue", "app_data": "sales"}},
        {"id": "3.1", "dialplan": {"app_name": "Stasis", "app_data": "other-app,sales"}},
        {"no": "id"}, "garbage",
    ]
    assert m.stasis_channels(channels, "callstream") == [
        m.StasisChannel("1.1", ("sales",), "+40720000001"), m.StasisChannel("1.1-agent-1", ("agent",), "")]
    assert m.stasis_channels({"message": "not a list"}, "callstream") == []


def test_other_event_types_are_ignored() -> None:
    assert m.parse('{"type": "ChannelVarset", "variable": "X"}', NOW) == m.Ignored("ChannelVarset")


class _DeadLetters:
    """The one EventSink call a malformed message makes."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, bytes, dict[str, str]]] = []

    def dead_letter(self, adapter: str, topic: str, value: bytes, headers: dict[str, str]) -> None:
        self.sent.append((adapter, topic, value, headers))


async def test_a_websocket_message_the_bridge_does_not_understand_is_logged_counted_and_dead_lettered() -> None:
    sink = _DeadLetters()
    bridge = AriBridge(routing(), cast(AriRest, None), cast(GrpcRouter, None), cast(EventSink, sink))
    bridge._received("not json {")
    bridge._received(b'{"type": "StasisStart", "args": ["sales"]}')
    bridge._received(stasis_start("1.1", ["sales"]))  # the bridge goes on with the next message
    assert bridge.malformed == 2
    assert [(adapter, topic, headers["ingest.reason"]) for adapter, topic, _, headers in sink.sent] == [
        ("ari", "cc.call-events.v1", "not_json"), ("ari", "cc.call-events.v1", "no_channel_id")]
    assert sink.sent[0][2] == b"not json {"
    assert isinstance(bridge.inputs.get_nowait(), m.CallerEntered) and bridge.inputs.empty()


# -- agents file ---------------------------------------------------------------------------------------------------


def test_agents_file(tmp_path: Path) -> None:
    path = tmp_path / "agents.yaml"
    path.write_text("agents:\n  - agent_id: a1\n    endpoint: PJSIP/1001\n    queues: [sales, support]\n")
    assert read_agents(path) == [Agent("a1", "PJSIP/1001", ("sales", "support"))]


@pytest.mark.parametrize(("text", "message"), [
    ("agents:\n  - agent_id: a1\n    endpoint: nonsense\n    queues: [sales]\n", "agents.0.endpoint"),
    ("agents:\n  - agent_id: a1\n    endpoint: PJSIP/1\n    queues: []\n", "agents.0.queues"),
    ("agents: [\n", "not YAML"),
    ("agents:\n  - {agent_id: a1, endpoint: PJSIP/1, queues: [s]}\n"
     "  - {agent_id: a1, endpoint: PJSIP/2, queues: [s]}\n", "listed twice"),
])
def test_a_bad_agents_file_names_the_file_and_the_fault(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "agents.yaml"
    path.write_text(text)
    with pytest.raises(AgentsFileError, match=message) as error:
        read_agents(path)
    assert str(path) in str(error.value)
