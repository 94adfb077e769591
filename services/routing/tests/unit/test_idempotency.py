"""Duplicate, stale and out-of-order inputs; snapshot / restore; plain-data codec."""

from __future__ import annotations

import json

from callstream_routing.domain import (
    AcceptReservation,
    AgentAction,
    CallOutcome,
    Channel,
    EndCall,
    OfferCall,
    QueueConfig,
    RelaxStep,
    RequiredSkill,
    Result,
    RoutingCore,
    SetAgentState,
    Strategy,
    TransferCall,
    from_plain,
    to_plain,
)


def test_duplicate_command_returns_first_result_and_changes_nothing(center):
    c = center()
    c.queue("q")
    c.login("a", ["q"])
    first = c.do(OfferCall, command_id="offer-1", call_id="x", queue_id="q")
    before = c.core.snapshot()
    c.t = 50
    again = c.do(OfferCall, command_id="offer-1", call_id="x", queue_id="q")
    assert again == first
    assert c.core.snapshot() == before
    other = c.do(OfferCall, call_id="x", queue_id="q")  # same call, new command: refused
    assert not other.accepted and other.reason == "call already active"


def test_stale_agent_version_is_refused(center):
    c = center()
    c.queue("q")
    c.login("a", ["q"], version=5)
    r = c.agent("a", AgentAction.NOT_READY, version=4)
    assert not r.accepted and r.reason == "stale version"
    r = c.agent("a", AgentAction.NOT_READY, version=5)
    assert not r.accepted
    r = c.agent("a", AgentAction.NOT_READY, version=6)
    assert r.accepted
    assert c.core.agent_state("a").version == 6


def test_out_of_order_inputs_are_no_ops(center, assigned):
    c = center()
    c.queue("q")
    assert not c.agent("ghost", AgentAction.READY).accepted
    assert not c.do(EndCall, call_id="nope").accepted
    assert not c.do(AcceptReservation, reservation_id="r99").accepted
    c.login("a", ["q"])
    c.offer("x", "q")
    # the switch reports the end before the accept (accept lost): the call still completes, once
    assert c.do(EndCall, call_id="x", agent_id="a").accepted
    assert c.core.call_outcome("x") is CallOutcome.COMPLETED
    assert not c.do(EndCall, call_id="x", agent_id="a").accepted
    assert not c.do(TransferCall, call_id="x", to_queue_id="q").accepted
    c.agent("a", AgentAction.LOGOUT)
    assert not c.agent("a", AgentAction.READY).accepted


def test_time_never_runs_backwards(center):
    c = center()
    c.queue("q", max_wait_s=10, overflow=None)
    c.login("a", ["q"])
    c.t = 100
    c.tick(100)
    c.t = 50  # a late command: processed at the core's clock
    r = c.offer("x", "q")
    assert r.decisions[0].at == 100
    assert c.core.now == 100


def _busy_center(center):
    c = center()
    c.queue("q", strategy=Strategy.SKILLS, wrap_up_s=5, relaxation=(RelaxStep(after_s=30, lower_min_by=1),),
            sticky_window_s=600, sticky_wait_s=10)
    c.queue("r", strategy=Strategy.ROUND_ROBIN)
    c.login("a", {"q": 0, "r": 1}, {"fr": 3}, capacity={Channel.CHAT: 2})
    c.login("b", ["q"], {"fr": 5})
    c.offer("x", "q", {"fr": 4}, caller_hash="h1")
    c.offer("y", "q", {"fr": 4})
    c.offer("z", "r", channel=Channel.CHAT)
    c.t = 3
    c.accept("x")
    c.t = 20
    c.end("x", hard=True)
    c.offer("w", "q", caller_hash="h1")
    return c


def test_snapshot_is_plain_data_and_restores_exactly(center):
    c = _busy_center(center)
    snap = c.core.snapshot()
    wire = json.loads(json.dumps(snap))
    restored = RoutingCore.restore(wire)
    assert restored.snapshot() == wire
    assert restored.next_deadline() == c.core.next_deadline()
    for t in (25, 40, 200):
        from callstream_routing.domain import Tick

        a = c.core.handle(Tick(now=t, command_id=f"t{t}"))
        b = restored.handle(Tick(now=t, command_id=f"t{t}"))
        assert a == b
    assert json.loads(json.dumps(c.core.snapshot())) == json.loads(json.dumps(restored.snapshot()))


def test_a_capture_is_the_snapshot_of_its_instant_whatever_happens_after(center):
    """The router captures under its lock and converts later: later commands must not change the capture."""
    from callstream_routing.domain import plain_snapshot

    c = _busy_center(center)
    expected = json.loads(json.dumps(c.core.snapshot()))
    captured = c.core.capture()
    c.t = 30
    c.offer("later", "q")
    c.end("x2")
    c.do(SetAgentState, agent_id="a", action=AgentAction.NOT_READY)
    assert json.loads(json.dumps(c.core.snapshot())) != expected
    assert json.loads(json.dumps(plain_snapshot(captured))) == expected


def test_replaying_the_log_rebuilds_the_same_state(center):
    c = _busy_center(center)
    fresh = RoutingCore(c.core.config)
    assert fresh.handle_all(c.log) == c.results
    assert fresh.snapshot() == c.core.snapshot()


def test_codec_round_trips_commands_and_results():
    cmds = [
        OfferCall(command_id="1", now=1.5, call_id="x", queue_id="q", priority=2,
                  required_skills=(RequiredSkill(skill_id="fr", min_proficiency=3),), channel=Channel.CHAT,
                  virtual_enqueue_time=0.25, callback_allowed=True),
        SetAgentState(agent_id="a", action=AgentAction.LOGIN, version=3),
        TransferCall(call_id="x", to_queue_id="q"),
        from_plain(to_plain(QueueConfig(queue_id="q", relaxation=(RelaxStep(after_s=3, add_queue_id="b"),)))),
    ]
    for cmd in cmds:
        assert from_plain(json.loads(json.dumps(to_plain(cmd)))) == cmd
    core = RoutingCore()
    res = core.handle(OfferCall(call_id="x", queue_id="missing"))
    assert isinstance(res, Result)
    assert from_plain(json.loads(json.dumps(to_plain(res)))) == res
