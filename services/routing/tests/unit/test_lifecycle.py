"""Reservations, ring-no-answer, reject / busy delays, wrap-up, cool-down, capacity, transfer, priority, cancel."""

from __future__ import annotations

from callstream_routing.domain import (
    AgentAction,
    AgentStatus,
    CallOutcome,
    CancelCall,
    Channel,
    NotReadyReason,
    Queued,
    RejectReservation,
    RouterConfig,
    RoutingCore,
    Tick,
    TimeoutReservation,
    TransferCall,
    UpdatePriority,
)

CFG = RouterConfig(max_ring_misses=2, rna_delay_s=5, reject_delay_s=10, busy_delay_s=30, cool_down_s=90)


def test_offer_reserves_until_accepted(center, assigned):
    c = center(CFG)
    c.queue("q", reservation_timeout_s=15)
    c.login("a", ["q"])
    r = c.offer("x", "q")
    d = r.decisions[0].outcome
    assert d.agent_id == "a" and d.reservation_expires_at == 15
    assert c.state("a") is AgentStatus.RESERVED
    assert c.core.next_deadline() == 15
    c.accept("x")
    assert c.state("a") is AgentStatus.TALKING
    assert c.core.next_deadline() is None
    c.end("x")
    assert c.core.call_outcome("x") is CallOutcome.COMPLETED
    assert c.state("a") is AgentStatus.READY


def test_ring_no_answer_requeues_in_place_and_sets_not_ready(center, assigned):
    c = center(CFG)
    c.queue("q", reservation_timeout_s=15)
    c.login("a", ["q"])
    c.offer("x", "q")
    c.t = 1
    c.offer("y", "q")  # waits behind x
    r = c.tick(15)  # x rings out: back to the head of the queue, agent delayed 5 s
    assert [d.outcome for d in r.decisions if d.call_id == "x"] == [Queued(position=1, expected_wait_s=0.0)]
    assert c.core.waiting_calls("q") == ("x", "y")
    assert c.state("a") is AgentStatus.NOT_READY
    r = c.tick(20)
    assert assigned(r) == {"x": "a"}
    r = c.do(TimeoutReservation, reservation_id=c.reservation("x"))  # switch reports the second miss
    assert r.accepted
    view = c.core.agent_state("a")
    assert view.state is AgentStatus.NOT_READY and view.reason is NotReadyReason.RING_NO_ANSWER
    c.t = 100
    assert c.core.next_deadline() is None  # nothing brings the agent back but the agent
    r = c.agent("a", AgentAction.READY)
    assert assigned(r) == {"x": "a"}
    assert c.core.agent_state("a").misses == 0


def test_reject_and_busy_delays(center, assigned):
    c = center(CFG)
    c.queue("q")
    c.login("a", ["q"])
    c.login("b", ["q"])
    c.offer("x", "q")  # a
    r = c.do(RejectReservation, reservation_id=c.reservation("x"))
    assert assigned(r) == {"x": "b"}
    assert c.state("a") is AgentStatus.NOT_READY
    assert c.core.next_deadline() == 10
    r = c.do(RejectReservation, reservation_id=c.reservation("x"), busy=True)
    assert isinstance(r.decisions[0].outcome, Queued)
    r = c.tick(10)
    assert assigned(r) == {"x": "a"}
    c.accept("x")
    c.tick(29)
    assert c.state("b") is AgentStatus.NOT_READY
    c.tick(30)
    assert c.state("b") is AgentStatus.READY


def test_late_and_duplicate_reservation_answers_are_refused(center, assigned):
    c = center(CFG)
    c.queue("q", reservation_timeout_s=15)
    c.login("a", ["q"])
    c.login("b", ["q"])
    c.offer("x", "q")
    rid = c.reservation("x")
    c.tick(15)  # expired; x goes to b
    assert c.agent_of("x") == "b"
    from callstream_routing.domain import AcceptReservation

    late = c.do(AcceptReservation, reservation_id=rid)
    assert not late.accepted and late.reason == "reservation not active"
    assert c.agent_of("x") == "b"
    c.accept("x")
    wrong = c.do(AcceptReservation, reservation_id=rid, call_id="x", agent_id="a")
    assert not wrong.accepted


def test_wrap_up_per_queue_and_per_agent(center, assigned):
    c = center(CFG)
    c.queue("q", wrap_up_s=30)
    c.login("a", ["q"])
    c.login("b", ["q"], wrap_up_s=5)
    c.offer("x", "q")
    c.offer("y", "q")
    c.accept("x")
    c.accept("y")
    c.t = 100
    c.end("x")
    c.end("y")
    assert c.state("a") is AgentStatus.WRAP_UP and c.state("b") is AgentStatus.WRAP_UP
    assert c.core.next_deadline() == 105
    c.tick(105)
    assert c.state("b") is AgentStatus.READY and c.state("a") is AgentStatus.WRAP_UP
    c.offer("z", "q")
    assert c.agent_of("z") == "b"
    c.offer("w", "q")
    c.t = 110
    r = c.agent("a", AgentAction.WRAP_UP_DONE)  # early end of wrap-up
    assert assigned(r) == {"w": "a"}


def test_cool_down_after_hard_call(center, assigned):
    c = center(CFG)
    c.queue("q", wrap_up_s=10)
    c.login("a", ["q"])
    c.offer("x", "q")
    c.accept("x")
    c.t = 50
    c.end("x", hard=True)
    assert c.state("a") is AgentStatus.WRAP_UP
    c.tick(60)
    view = c.core.agent_state("a")
    assert view.state is AgentStatus.COOL_DOWN and view.reason is NotReadyReason.COOL_DOWN
    r = c.offer("y", "q")
    assert isinstance(r.decisions[0].outcome, Queued)
    assert c.core.next_deadline() == 150
    r = c.tick(150)
    assert assigned(r) == {"y": "a"}


def test_multi_channel_capacity(center, assigned):
    c = center(CFG)
    c.queue("chat")
    c.queue("voice")
    c.login("a", ["chat", "voice"], capacity={Channel.CHAT: 3})
    for i in range(4):
        c.offer(f"c{i}", "chat", channel=Channel.CHAT)
    assert [c.agent_of(f"c{i}") for i in range(4)] == ["a", "a", "a", None]
    assert assigned(c.offer("v", "voice")) == {"v": "a"}  # voice capacity is separate
    c.accept("c0")
    r = c.end("c0")
    assert assigned(r) == {"c3": "a"}


def test_callback_channel_uses_voice_capacity(center, assigned):
    c = center(CFG)
    c.queue("q")
    c.login("a", ["q"])
    c.offer("v", "q")
    r = c.offer("cb", "q", channel=Channel.CALLBACK)
    assert isinstance(r.decisions[0].outcome, Queued)
    c.accept("v")
    r = c.end("v")
    assert assigned(r) == {"cb": "a"}
    c.talk("cb")
    assert c.core.call_outcome("cb") is CallOutcome.CALLED_BACK


def test_priority_then_virtual_enqueue_time(center, assigned):
    c = center(CFG)
    c.queue("q")
    c.login("a", ["q"])
    c.offer("busy", "q")
    c.accept("busy")
    c.t = 1
    c.offer("old", "q")
    c.t = 2
    c.offer("vip", "q", priority=5)
    c.t = 3
    c.offer("reentry", "q", virtual_enqueue_time=0.5)  # re-entered: keeps its earlier place
    assert c.core.waiting_calls("q") == ("vip", "reentry", "old")
    c.do(UpdatePriority, call_id="old", priority=9)  # applies at once
    assert c.core.waiting_calls("q") == ("old", "vip", "reentry")
    assert c.core.call_state("old").position == 1
    r = c.end("busy")
    assert assigned(r) == {"old": "a"}


def test_cancel_waiting_and_reserved(center, assigned):
    c = center(CFG)
    c.queue("q")
    c.login("a", ["q"])
    c.offer("x", "q")
    c.offer("y", "q")
    r = c.do(CancelCall, call_id="x")  # hung up while ringing: agent takes the next caller
    assert assigned(r) == {"y": "a"}
    assert c.core.call_outcome("x") is CallOutcome.ABANDONED
    c.offer("z", "q")
    c.do(CancelCall, call_id="z")
    assert c.core.call_outcome("z") is CallOutcome.ABANDONED
    again = c.do(CancelCall, call_id="z")
    assert not again.accepted


def test_transfer_to_queue_keeps_virtual_enqueue_time(center, assigned):
    c = center(CFG)
    c.queue("l1")
    c.queue("l2")
    c.login("a", ["l1"])
    c.login("b", ["l2"])
    c.offer("x", "l1")
    c.accept("x")
    c.offer("busy", "l2")
    c.accept("busy")
    c.t = 10
    c.offer("other", "l2")
    c.t = 20
    r = c.do(TransferCall, call_id="x", from_agent_id="a", to_queue_id="l2")
    assert r.accepted
    assert c.core.waiting_calls("l2") == ("x", "other")  # entered at 0, ahead of the caller from 10
    assert c.core.call_state("x").virtual_enqueue_time == 0
    r = c.end("busy")
    assert assigned(r) == {"x": "b"}


def test_transfer_to_agent(center, assigned):
    c = center(CFG)
    c.queue("q")
    c.login("a", ["q"])
    c.login("expert", [])
    c.offer("x", "q")
    c.accept("x")
    r = c.do(TransferCall, call_id="x", from_agent_id="a", to_agent_id="expert")
    assert assigned(r) == {"x": "expert"}
    assert c.state("a") is AgentStatus.READY
    bad = c.do(TransferCall, call_id="x", from_agent_id="a", to_agent_id="expert")
    assert not bad.accepted


def test_logout_releases_reservations(center, assigned):
    c = center(CFG)
    c.queue("q")
    c.login("a", ["q"])
    c.login("b", ["q"])
    c.offer("x", "q")  # a
    c.accept("x")
    c.offer("y", "q")  # b
    r = c.agent("b", AgentAction.LOGOUT)
    assert [type(d.outcome).__name__ for d in r.decisions] == ["Queued"]
    assert c.state("b") is AgentStatus.LOGGED_OUT
    r = c.end("x")
    assert assigned(r) == {"y": "a"}


def test_a_call_id_offered_again_is_timed_as_the_new_call(center):
    """The first x's reservation timer is left behind when it is cancelled; the second x, reserved at the same
    instant after y, expires at the same time. It is timed out in its own turn (after y), as in a core restored
    from a snapshot, which has no leftover timers."""
    c = center(RouterConfig(rna_delay_s=5))
    c.queue("q", reservation_timeout_s=15.0)
    c.login("a", ["q"])
    c.login("b", ["q"])
    c.offer("x", "q")
    c.do(CancelCall, call_id="x")
    c.offer("y", "q")
    c.offer("x", "q")
    restored = RoutingCore.restore(c.core.snapshot())
    live = c.do(Tick, command_id="", now=20.0)
    assert [d.call_id for d in live.decisions][:2] == ["y", "x"]
    assert restored.handle(Tick(now=20.0)) == live
