"""Wallboard figures against the watermark: waiting calls, windows, agents by state."""

from __future__ import annotations

import math
import random
from dataclasses import replace

import pytest
from kpi_builders import Call, agent_event, at

from callstream.agent.v1 import agent_events_pb2
from callstream.call.v1 import call_events_pb2
from callstream_kpi.domain.realtime import RealtimeSettings, RealtimeView, Snapshot
from callstream_kpi.domain.targets import CENTER, QueueSettings, QueueTargets, ScopeRef

Q1, Q2 = ScopeRef("queue", "q1"), ScopeRef("queue", "q2")


def traffic() -> list[call_events_pb2.CallEvent]:
    calls = [
        Call("c0").offered(-1200).queued(-1200).answered(-1190, "a9"),  # 30/60-min windows only; wait 10
        Call("c1").offered(0).queued(0),  # still waiting at 100
        Call("c2").offered(30).queued(30),  # still waiting
        Call("c3", queue="q2").offered(10).queued(10).answered(40, "a3"),  # wait 30 > 20
        Call("c4").offered(50).queued(50).answered(55, "a1"),  # wait 5
        Call("c5").offered(60).queued(60).abandoned(70),  # short abandon (10 s)
        Call("c6").offered(0).queued(0).abandoned(80),  # abandon after 80 s
        Call("tick").offered(100),  # moves the watermark to 100
    ]
    return [e for c in calls for e in c.events]


def view(events: list[call_events_pb2.CallEvent]) -> RealtimeView:
    v = RealtimeView(RealtimeSettings(allowed_lateness_s=0.0))
    v.process_batch(events)
    return v


def test_calls_waiting_and_longest_wait() -> None:
    v = view(traffic())
    center = v.snapshot()
    assert center is not None and center.as_of == at(100)
    assert (center.calls_waiting, center.longest_wait_s) == (2, 100.0)
    q1, q2 = v.snapshot(Q1), v.snapshot(Q2)
    assert q1 is not None and q2 is not None
    assert (q1.calls_waiting, q1.longest_wait_s) == (2, 100.0)
    assert (q2.calls_waiting, q2.longest_wait_s) == (0, 0.0)


def test_window_figures() -> None:
    v = view(traffic())
    w15, w30, w60 = v.window_figures()
    # last 15 min: c3, c4 answered (1 within 20 s), c5 short and c6 abandons
    assert (w15.offered, w15.answered, w15.answered_within_t, w15.abandoned, w15.short_abandons) == (4, 2, 1, 2, 1)
    assert w15.service_level == pytest.approx(100 / 3)  # 1 / (4 - 1)
    assert w15.asa_s == 17.5  # (30 + 5) / 2
    assert w15.abandon_rate == pytest.approx(100 / 3)  # (2 - 1) / (4 - 1)
    # c0 (decided at -1190) falls in the 30 and 60-min windows
    assert (w30.offered, w30.answered, w30.answered_within_t) == (5, 3, 2)
    assert w30.service_level == 50.0 and w30.asa_s == 15.0  # 2 / 4; (30 + 5 + 10) / 3
    assert w60 == type(w60)(60, 5, 3, 2, 2, 1, 50.0, 15.0, 25.0)
    (q2_15, _, _) = v.window_figures(Q2)
    assert (q2_15.offered, q2_15.service_level, q2_15.asa_s, q2_15.abandon_rate) == (1, 0.0, 30.0, 0.0)


def test_each_queue_is_figured_with_its_own_targets_and_a_change_restates_the_windows() -> None:
    v = view(traffic())
    targets = QueueTargets(QueueSettings("", sl_threshold_s=20.0, sl_goal_pct=80.0, short_abandon_s=20.0), {
        "q1": QueueSettings("q1", sl_threshold_s=4.0, sl_goal_pct=95.0, short_abandon_s=5.0),
        "q2": QueueSettings("q2", sl_threshold_s=30.0)})
    v.settings = replace(v.settings, targets=targets)
    center, q1, q2 = v.window_figures()[0], v.window_figures(Q1)[0], v.window_figures(Q2)[0]
    # q1, last 15 min: c4 answered after 5 s (> T 4 s), c5 abandoned after 10 s (> 5 s: not short), c6 after 80 s
    assert (q1.offered, q1.answered_within_t, q1.short_abandons) == (3, 0, 0)
    assert q1.service_level == 0.0 and q1.abandon_rate == pytest.approx(100 * 2 / 3)
    # q2: c3 answered after 30 s, within its T of 30 s
    assert (q2.answered_within_t, q2.service_level) == (1, 100.0)
    # the center counts each call against its own queue's thresholds: 1 within T of 4 offered, none short
    assert (center.answered_within_t, center.short_abandons, center.service_level) == (1, 0, 25.0)
    snap_q1, snap_center = v.snapshot(Q1), v.snapshot()
    assert snap_q1 is not None and snap_center is not None
    assert (snap_q1.sl_threshold_s, snap_q1.sl_goal_pct) == (4.0, 95.0)
    assert (snap_center.sl_threshold_s, snap_center.sl_goal_pct) == (20.0, 80.0)  # the defaults
    msg = snap_q1.to_proto()
    assert (msg.service_level_threshold_s, msg.service_level_target) == (4.0, 95.0)
    v.settings = replace(v.settings, targets=QueueTargets())  # back to the defaults: the figures of test_window_figures
    assert v.window_figures(Q1)[0].short_abandons == 1 and v.window_figures()[0].service_level == pytest.approx(100 / 3)


def test_same_figures_whatever_arrival_order_and_batching() -> None:
    events = traffic()
    one_by_one = RealtimeView(RealtimeSettings(allowed_lateness_s=0.0))
    for ev in events:  # live: an advance after every event
        one_by_one.process_batch([ev])
    shuffled = list(events)
    random.Random(3).shuffle(shuffled)
    replay = view(shuffled)  # a replay: everything in one batch, out of order
    assert one_by_one.snapshots() == replay.snapshots()


def test_late_queued_after_answer_does_not_make_call_wait() -> None:
    c = Call("late").offered(0).queued(0).answered(5, "a1")
    queued, answered = c.events[1], c.events[2]
    v = RealtimeView(RealtimeSettings(allowed_lateness_s=0.0))
    v.process_batch([c.events[0], answered])
    v.process_batch([queued])  # behind the watermark
    snap = v.snapshot()
    assert snap is not None and snap.calls_waiting == 0


def test_nothing_before_first_event_and_undefined_is_nan() -> None:
    v = RealtimeView()
    assert v.snapshot() is None and v.snapshots() == []
    v.process_batch(Call("x").offered(0).events)
    snap = v.snapshot()
    assert snap is not None
    assert snap.windows[0].service_level is None
    msg = snap.to_proto()
    assert math.isnan(msg.windows[0].service_level) and msg.windows[0].offered == 0
    assert msg.as_of.ToDatetime().isoformat() == "2026-03-02T09:59:50"  # lateness 10 s by default


def test_agents_by_state_and_time_in_state() -> None:
    v = RealtimeView(RealtimeSettings(allowed_lateness_s=0.0))
    agents = [
        agent_event("a1", 0, "queue_membership_changed", queue_id="q1", member=True),
        agent_event("a2", 0, "queue_membership_changed", queue_id="q1", member=True),
        agent_event("a3", 0, "queue_membership_changed", queue_id="q2", member=True),
        agent_event("a1", 10, "ready"),
        agent_event("a2", 20, "not_ready", reason=agent_events_pb2.NOT_READY_REASON_BREAK),
        agent_event("a3", 30, "talking", call_id="c3"),
        agent_event("a1", 60, "ready"),  # re-announced: time in state still from 10
    ]
    v.process_batch(Call("tick").offered(100).events, agents)
    center = v.snapshot()
    q1 = v.snapshot(Q1)
    assert isinstance(center, Snapshot) and q1 is not None
    assert center.agents_by_state == {"ready": 1, "not_ready:break": 1, "talking": 1}
    assert q1.agents_by_state == {"ready": 1, "not_ready:break": 1}
    assert {(a.agent_id, a.state, a.reason, a.time_in_state_s) for a in q1.agents} == {
        ("a1", "ready", "", 90.0), ("a2", "not_ready", "break", 80.0)}
    msg = q1.to_proto()
    assert dict(msg.agents_by_state) == {"ready": 1, "not_ready:break": 1}
    assert msg.scope.id == "q1" and len(msg.windows) == 3
    assert CENTER.kind == "center"


def test_finished_calls_are_forgotten_and_late_duplicates_ignored() -> None:
    v = RealtimeView(RealtimeSettings(allowed_lateness_s=0.0, retention_s=60.0, session_timeout_s=3600.0))
    done = Call("d").offered(0).queued(0).abandoned(30)
    v.process_batch(done.events + Call("open").offered(0).queued(0).events)
    v.process_batch(Call("tick").offered(100).events)
    assert v._calls.keys() == {"open", "tick"}  # "d" ended at 30, forgotten after 60 s
    v.process_batch([done.events[1]])  # a late duplicate of its queued event
    snap = v.snapshot()
    assert snap is not None and snap.calls_waiting == 1  # only "open"
    assert snap.windows[0].abandoned == 1  # d's figure stays in the window
    v.process_batch(Call("tick2").offered(3701).events)
    assert "open" not in v._calls  # never finished: dropped after the session timeout


def test_expected_wait_is_the_routers_newest_quote_per_queue() -> None:
    v = view(traffic())  # watermark at 100
    assert v.snapshot(Q1).expected_wait_s == -1.0  # type: ignore[union-attr]  # no quote yet: unknown
    v.on_wait_quote("q1", at(90), 42.5)
    v.on_wait_quote("q1", at(60), 7.0)  # older (arrived late): not the newest quote
    v.on_wait_quote("q2", at(95), 12.0)
    q1, q2, center = v.snapshot(Q1), v.snapshot(Q2), v.snapshot()
    assert q1 is not None and q2 is not None and center is not None
    assert (q1.expected_wait_s, q2.expected_wait_s) == (42.5, 12.0)
    assert center.expected_wait_s == 42.5  # the longest wait a caller is quoted now
    assert q1.to_proto().expected_wait_s == 42.5
    v.on_wait_quote("q2", at(99), -1.0)  # the router could not estimate: unknown, not a wait of -1 s
    assert v.snapshot(Q2).expected_wait_s == -1.0  # type: ignore[union-attr]


def test_a_stale_quote_is_unknown() -> None:
    v = RealtimeView(RealtimeSettings(allowed_lateness_s=0.0, quote_valid_s=60.0))
    v.on_wait_quote("q1", at(0), 30.0)
    v.process_batch(Call("tick").offered(60).events)
    assert v.snapshot(Q1).expected_wait_s == 30.0  # type: ignore[union-attr]  # exactly 60 s old: still valid
    v.process_batch(Call("tick2").offered(61).events)
    assert v.snapshot(Q1).expected_wait_s == -1.0  # type: ignore[union-attr]


def test_a_queue_with_a_ready_agent_and_nobody_waiting_has_no_wait() -> None:
    v = RealtimeView(RealtimeSettings(allowed_lateness_s=0.0))
    agents = [
        agent_event("a1", 0, "queue_membership_changed", queue_id="q1", member=True),
        agent_event("a3", 0, "queue_membership_changed", queue_id="q2", member=True),
        agent_event("a1", 10, "ready"),
        agent_event("a3", 30, "talking", call_id="c3"),
    ]
    v.on_wait_quote("q1", at(5), 80.0)  # quoted while a1 was not ready yet
    v.on_wait_quote("q2", at(20), 35.0)
    v.process_batch(Call("tick", queue="q2").offered(100).events, agents)
    q1, q2, center = v.snapshot(Q1), v.snapshot(Q2), v.snapshot()
    assert q1 is not None and q2 is not None and center is not None
    assert q1.expected_wait_s == 0.0  # a1 is ready and nobody waits in q1: a caller is answered at once
    assert q2.expected_wait_s == 35.0  # its only agent talks: the router's quote
    assert center.expected_wait_s == 35.0
    v.process_batch(Call("c9").offered(110).queued(110).events + Call("tick2").offered(120).events)
    assert v.snapshot(Q1).expected_wait_s == 80.0  # type: ignore[union-attr]  # a caller waits: the quote again
