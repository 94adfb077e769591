"""Queue guards, overflow, callbacks, relaxation over time and the expected-wait estimate."""

from __future__ import annotations

import pytest

from callstream_routing.domain import (
    AcceptCallback,
    AgentAction,
    CallbackOffered,
    CallOutcome,
    CancelCall,
    OverflowDestination,
    Overflowed,
    OverflowTarget,
    Queued,
    Rejected,
    RelaxStep,
    expected_wait,
    queue_length_estimate,
)

VOICEMAIL = OverflowTarget(destination=OverflowDestination.VOICEMAIL)
CALLBACK = OverflowTarget(destination=OverflowDestination.CALLBACK)


def outcomes(result):
    return [(d.call_id, d.queue_id, d.outcome) for d in result.decisions]


def test_max_length_rejects_without_overflow(center):
    c = center()
    c.queue("q", max_length=1)
    c.offer("x", "q")
    r = c.offer("y", "q")
    assert outcomes(r) == [("y", "q", Rejected(reason="queue full"))]
    assert c.core.call_outcome("y") is CallOutcome.REJECTED


def test_max_length_overflows_to_queue(center, assigned):
    c = center()
    c.queue("q", max_length=1, overflow=OverflowTarget(destination=OverflowDestination.QUEUE, queue_id="spill"))
    c.queue("spill")
    c.login("s", ["spill"])
    c.offer("x", "q")
    r = c.offer("y", "q")
    assert r.decisions[0].outcome == Overflowed(destination=OverflowDestination.QUEUE, to_queue_id="spill",
                                                reason="queue full")
    assert assigned(r) == {"y": "s"}


def test_max_wait_overflow_to_the_callers_free_sticky_agent(center, assigned):
    c = center()
    c.queue("q", max_wait_s=60, overflow=OverflowTarget(destination=OverflowDestination.QUEUE, queue_id="spill"))
    c.queue("spill", sticky_window_s=3600)
    c.login("s", ["spill"])
    c.offer("first", "spill", caller_hash="h")
    c.talk("first")
    c.offer("x", "q", caller_hash="h")  # nobody serves q: x waits until its max wait
    c.t = 30
    c.offer("y", "q")
    r = c.tick(60)
    assert r.decisions[0].outcome == Overflowed(destination=OverflowDestination.QUEUE, to_queue_id="spill",
                                                reason="max wait")
    assert assigned(r) == {"x": "s"}  # straight to its last agent, who is free
    assert c.core.waiting_calls("q") == ("y",)
    assert c.core.waiting_calls("spill") == ()


def test_overflow_loop_is_rejected(center):
    c = center()
    c.queue("a", max_length=0, overflow=OverflowTarget(destination=OverflowDestination.QUEUE, queue_id="b"))
    c.queue("b", max_length=0, overflow=OverflowTarget(destination=OverflowDestination.QUEUE, queue_id="a"))
    r = c.offer("x", "a")
    assert isinstance(r.decisions[-1].outcome, Rejected)
    assert c.core.call_outcome("x") is CallOutcome.REJECTED


def test_join_when_empty_false(center, assigned):
    c = center()
    c.queue("q", join_when_empty=False, overflow=VOICEMAIL)
    r = c.offer("x", "q")
    assert r.decisions[0].outcome.destination is OverflowDestination.VOICEMAIL
    assert c.core.call_outcome("x") is CallOutcome.OVERFLOWED
    c.login("a", ["q"])
    c.agent("a", AgentAction.NOT_READY)  # logged in but not ready still counts as staffed
    r = c.offer("y", "q")
    assert isinstance(r.decisions[0].outcome, Queued)


def test_leave_when_empty(center):
    c = center()
    c.queue("q", leave_when_empty=True, overflow=VOICEMAIL)
    c.login("a", ["q"])
    c.agent("a", AgentAction.NOT_READY)
    c.offer("x", "q")
    c.offer("y", "q")
    r = c.agent("a", AgentAction.LOGOUT)
    assert [(d.call_id, d.outcome.destination) for d in r.decisions] == [
        ("x", OverflowDestination.VOICEMAIL), ("y", OverflowDestination.VOICEMAIL)]
    assert c.core.waiting_calls("q") == ()


def test_max_wait_to_voicemail(center):
    c = center()
    c.queue("q", max_wait_s=60, overflow=VOICEMAIL)
    c.offer("x", "q")
    assert c.core.next_deadline() == 60
    assert c.tick(59).decisions == ()
    r = c.tick(60)
    assert r.decisions[0].outcome == Overflowed(destination=OverflowDestination.VOICEMAIL, reason="max wait")
    assert c.core.call_outcome("x") is CallOutcome.OVERFLOWED


def test_max_wait_to_callback_keeps_position(center, assigned):
    c = center()
    c.queue("q", max_wait_s=60, overflow=CALLBACK)
    c.login("a", ["q"])
    c.offer("busy", "q")
    c.accept("busy")
    c.t = 1
    c.offer("x", "q")
    c.t = 30
    c.offer("y", "q")
    r = c.tick(61)
    assert outcomes(r) == [("x", "q", Overflowed(destination=OverflowDestination.CALLBACK, reason="max wait"))]
    assert c.core.waiting_calls("q") == ("x", "y")
    assert c.core.call_state("x").callback
    r = c.tick(90)  # y overflows to callback as well, behind x
    assert c.core.waiting_calls("q") == ("x", "y")
    assert c.core.next_deadline() is None
    r = c.end("busy")
    assert assigned(r) == {"x": "a"}
    c.talk("x")
    assert c.core.call_outcome("x") is CallOutcome.CALLED_BACK


def test_callback_offered_when_wait_is_long(center):
    c = center()
    c.queue("q", service_time_s=300, callback_threshold_s=100)
    c.login("a", ["q"])
    c.offer("busy", "q")
    c.accept("busy")
    r = c.offer("x", "q", callback_allowed=True)
    assert r.decisions[0].outcome == CallbackOffered(position=1, expected_wait_s=300.0)
    r = c.offer("y", "q")  # did not ask for callbacks
    assert r.decisions[0].outcome == Queued(position=2, expected_wait_s=600.0)
    r = c.do(AcceptCallback, call_id="x")
    assert r.decisions[0].outcome.destination is OverflowDestination.CALLBACK
    assert c.core.waiting_calls("q") == ("x", "y")
    assert not c.do(AcceptCallback, call_id="x").accepted


def test_relaxation_lowers_skill_minimum_after_delay(center, assigned):
    c = center()
    c.queue("q", relaxation=(RelaxStep(after_s=30, lower_min_by=2),))
    c.login("novice", ["q"], {"fr": 2})
    r = c.offer("x", "q", {"fr": 4})
    assert isinstance(r.decisions[0].outcome, Queued)
    assert c.core.next_deadline() == 30
    r = c.tick(30)
    assert assigned(r) == {"x": "novice"}


def test_relaxation_drops_skills_and_keeps_order(center, assigned):
    c = center()
    c.queue("q", relaxation=(RelaxStep(after_s=10, lower_min_by=1), RelaxStep(after_s=20, drop_skills=True)))
    c.login("a", ["q"], {"de": 5})
    c.offer("busy", "q")
    c.accept("busy")
    c.offer("x", "q", {"fr": 3})
    c.t = 5
    c.offer("y", "q")
    c.tick(25)
    assert c.core.call_state("x").relax_stage == 2
    assert c.core.call_state("x").requirement == ()
    r = c.end("busy")
    assert assigned(r) == {"x": "a"}  # x (now any agent) is ahead of y


def test_relaxation_adds_overflow_queue_without_losing_place(center, assigned):
    c = center()
    c.queue("q", relaxation=(RelaxStep(after_s=20, add_queue_id="backup"),))
    c.queue("backup")
    c.login("a", ["q"])
    c.login("b", ["backup"])
    c.offer("busy", "q")
    c.accept("busy")
    c.offer("busy2", "backup")
    c.accept("busy2")
    c.offer("x", "q")
    c.t = 20
    c.tick(20)
    assert c.core.call_state("x").eligible_queues == ("q", "backup")
    assert c.core.waiting_calls("q") == ("x",)  # still holds its place in its own queue
    r = c.end("busy2")
    assert assigned(r) == {"x": "b"}


def test_queue_state_query(center):
    c = center()
    c.queue("q", service_time_s=120)
    c.login("a", ["q"])
    c.login("b", ["q"])
    c.agent("b", AgentAction.NOT_READY)
    c.offer("x", "q")
    c.t = 10
    c.offer("y", "q")
    c.t = 25
    c.tick(25)
    v = c.core.queue_state("q")
    assert (v.calls_waiting, v.agents_logged_in, v.agents_idle) == (1, 2, 0)
    assert v.longest_wait_s == 15
    assert v.expected_wait_s == pytest.approx(2 * 60.0)


def test_expected_wait_formula():
    # s=2 agents, mu=1/120, theta=1/60, 2 callers ahead: 1/(2/120) + 1/(2/120+1/60) + 1/(2/120+2/60)
    est = queue_length_estimate(2, 2, 1 / 120, 1 / 60)
    assert est == pytest.approx(60 + 30 + 20)
    assert expected_wait(2, 2, 120.0, 60.0, None) == pytest.approx(110)
    assert expected_wait(2, 2, 120.0, None, None) == pytest.approx(180)  # no abandonment
    assert expected_wait(2, 0, 120.0, None, 42.0) == 42.0  # no agents: last served caller's delay
    assert expected_wait(2, 2, None, None, 42.0) == 42.0  # rates unknown
    assert expected_wait(2, 2, None, None, None) == -1.0


def test_expected_wait_learns_rates(center):
    c = center()
    c.queue("q")
    c.login("a", ["q"])
    c.offer("x", "q")
    c.accept("x")
    c.t = 10
    c.offer("y", "q")
    r = c.offer("z", "q")
    assert r.decisions[0].outcome == Queued(position=2, expected_wait_s=0.0)  # LES fallback (x waited 0)
    c.t = 100
    c.end("x")  # handle time 100 s -> mu known; y enters service after 90 s
    c.accept("y")
    c.t = 110
    c.do(CancelCall, call_id="z")  # one abandonment after 100 s of waiting
    r = c.offer("w", "q")
    c.t = 111
    r = c.offer("v", "q")
    # s=1, mu=1/100, patience = exposure/abandons = (90 + 100)/1 -> theta = 1/190; one caller ahead
    assert r.decisions[0].outcome.expected_wait_s == pytest.approx(100 + 1 / (1 / 100 + 1 / 190))
    assert c.core.call_state("v").expected_wait_s == r.decisions[0].outcome.expected_wait_s
