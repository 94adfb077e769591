"""Watermark, interval bucketing, rolling windows, agent state intervals."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kpi_builders import agent_event, at

from callstream.agent.v1 import agent_events_pb2
from callstream_kpi.domain import kpis
from callstream_kpi.domain.agent_states import (
    AgentStateTracker,
    StateInterval,
    logged_in_seconds,
    rollup_states,
    split_interval,
)
from callstream_kpi.domain.watermark import (
    PartitionWatermark,
    RollingWindow,
    Watermark,
    interval_end,
    interval_start,
    split_by_interval,
)


def test_interval_start() -> None:
    d = datetime(2026, 3, 2, 10, 29, 59, 999000, tzinfo=UTC)
    assert interval_start(d) == datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    assert interval_start(d.replace(minute=30, second=0, microsecond=0)) == datetime(2026, 3, 2, 10, 30, tzinfo=UTC)
    assert interval_end(d) == datetime(2026, 3, 2, 10, 30, tzinfo=UTC)
    assert interval_start(d, 60) == datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    with pytest.raises(ValueError):
        interval_start(datetime(2026, 1, 1))


def test_split_by_interval() -> None:
    parts = split_by_interval(at(-60), at(1900))  # 09:59:00 -> 10:31:40
    assert parts == [(at(-60), at(0)), (at(0), at(1800)), (at(1800), at(1900))]


def test_watermark_is_max_minus_lateness_and_monotonic() -> None:
    w = Watermark(allowed_lateness_s=10)
    assert w.current is None and not w.is_late(at(0))
    w.observe(at(100))
    w.observe(at(50))  # an older event does not move it back
    assert w.current == at(90)
    assert w.is_late(at(89)) and not w.is_late(at(90))


def test_partition_watermark_is_the_minimum_over_partitions() -> None:
    w = PartitionWatermark(allowed_lateness_s=10, idle_timeout_s=5)
    assert w.advance(0.0) is None and w.current is None and not w.is_late(at(0))
    w.observe("p0", at(1000), now_s=0.0)  # p0 read far ahead (a replay fetching its backlog first)
    w.observe("p1", at(100), now_s=0.0)
    w.observe("p1", at(50), now_s=0.0)  # older event in p1: its newest stays 100
    assert w.advance(0.0) == at(90)  # min(1000, 100) - 10: p1's calls are not timed out by p0's clock
    assert w.is_late(at(89)) and not w.is_late(at(90))
    w.observe("p1", at(400), now_s=1.0)
    assert w.advance(1.0) == at(390)
    w.observe("p2", at(200), now_s=1.5)  # a partition seen for the first time: never moves the watermark back
    assert w.advance(1.5) == at(390) and w.partitions == 3


def test_idle_partition_stops_holding_the_watermark_back() -> None:
    w = PartitionWatermark(allowed_lateness_s=0, idle_timeout_s=5)
    w.observe("quiet", at(100), now_s=0.0)
    w.observe("busy", at(100), now_s=0.0)
    for n in range(1, 10):  # busy keeps delivering, quiet delivers nothing
        w.observe("busy", at(100 + 10 * n), now_s=float(n))
        w.advance(float(n))
        expected = at(100) if n < 5 else at(100 + 10 * n)  # quiet is idle from 5 s after its last event
        assert w.current == expected, n
    w.observe("quiet", at(95), now_s=10.0)  # quiet wakes up: busy again, but the watermark never moves back
    assert w.advance(10.0) == at(190)
    w.observe("busy", at(300), now_s=11.0)
    assert w.advance(11.0) == at(190)  # held by quiet (newest 100) until it catches up or goes idle again


def test_partition_with_a_backlog_is_never_idle() -> None:
    """A replay: the consumer is busy with p0's backlog and takes nothing from p1 for a long time, but p1's
    log end offset says records are waiting, so p1 keeps holding the watermark (no early time-outs)."""
    w = PartitionWatermark(allowed_lateness_s=0, idle_timeout_s=5)
    w.observe("p0", at(0), now_s=0.0, offset=0)
    w.observe("p1", at(0), now_s=0.0, offset=0)
    w.note_end_offset("p1", 500)  # 499 records in p1 not taken yet
    w.note_end_offset("unseen", 10)  # ignored: no event from it yet
    for n in range(1, 60):
        w.observe("p0", at(3600 * n), now_s=float(n), offset=n)
        w.note_end_offset("p0", n + 1)
        assert w.advance(float(n)) == at(0), n
    assert not w.idle("p1", 100.0) and w.idle("p0", 100.0)
    w.observe("p1", at(10), now_s=60.0, offset=498)  # one record left in p1
    assert w.advance(60.0) == at(10)
    w.observe("p1", at(20), now_s=60.5, offset=499)  # the consumer took every record of every partition
    assert w.advance(60.5) == at(3600 * 59)  # nothing waiting anywhere: the newest event time, at once


def test_a_dead_lettered_last_record_is_not_a_backlog() -> None:
    w = PartitionWatermark(allowed_lateness_s=0, idle_timeout_s=5)
    w.observe("p0", at(0), now_s=0.0, offset=0)
    w.observe("p1", at(100), now_s=0.0, offset=0)
    w.note_end_offset("p0", 2)  # offset 1 could not be decoded: no event time from it
    assert w.advance(10.0) == at(0)  # p0 looks busy: a record not taken
    w.note_taken("p0", 1)
    assert w.advance(10.0) == at(100)


def test_a_quiet_caught_up_stream_closes_its_last_seconds() -> None:
    """Live: the last event at 100 and nothing since. The watermark starts at 100 - lateness and moves up by the
    quiet processing time, up to the newest event, so the last calls close without a next event."""
    w = PartitionWatermark(allowed_lateness_s=10, idle_timeout_s=5)
    w.observe("p0", at(90), now_s=1000.0, offset=0)
    w.observe("p1", at(100), now_s=1000.0, offset=0)
    w.note_end_offset("p0", 1)
    w.note_end_offset("p1", 1)
    assert w.advance(1000.0) == at(90)
    assert w.advance(1004.0) == at(94)
    assert w.advance(1030.0) == at(100)  # never ahead of the newest event seen
    w.note_end_offset("p1", 2)  # a record came and is not taken yet: the quiet is over
    assert w.advance(1031.0) == at(100)  # monotonic: it stays where it was


def test_offsets_committed_before_a_restart_are_not_a_backlog() -> None:
    """Issue 17 item 3: a partition rebuilt from stored events at start-up is at its committed offset, past
    its last stored event (a dead-lettered tail): with no new record it must not hold the watermark back."""
    w = PartitionWatermark(allowed_lateness_s=0, idle_timeout_s=5)
    w.observe("rebuilt", at(100), now_s=0.0, offset=41)
    w.note_taken("rebuilt", 43 - 1)  # the group committed 43: offset 42 was taken before the restart
    w.observe("live", at(100), now_s=0.0, offset=0)
    w.note_end_offset("rebuilt", 43)
    for n in range(1, 4):
        w.observe("live", at(100 + 10 * n), now_s=float(n), offset=n)
        w.note_end_offset("live", n + 1)
    assert w.advance(3.0) == at(130)


def test_partitions_running_ahead_of_the_slowest_with_records_left() -> None:
    w = PartitionWatermark(allowed_lateness_s=10, idle_timeout_s=5)
    lead = timedelta(seconds=600)
    for name, seconds in (("a", 1_000), ("b", 1_500), ("c", 5_000)):
        w.observe(name, at(seconds), now_s=0.0, offset=9)
    assert w.running_ahead(lead) == set()  # no end offset known: no backlog known, nothing to wait for
    for name in ("a", "b", "c"):
        w.note_end_offset(name, 100)
    assert w.running_ahead(lead) == {"c"}  # 4,000 s ahead of a; b is within the lead
    w.observe("a", at(4_600), now_s=1.0, offset=99)  # a has taken its last record: b is the slowest with some left
    assert w.running_ahead(lead) == {"a", "c"}
    w.observe("b", at(4_500), now_s=2.0, offset=50)  # b catches up: everyone is within the lead of it
    assert w.running_ahead(lead) == set()
    w.observe("c", at(9_000), now_s=3.0, offset=60)
    assert w.running_ahead(lead) == {"c"}
    w.observe("b", at(4_550), now_s=4.0, offset=99)  # c is the only one with records left: nothing to wait for
    assert w.running_ahead(lead) == set()


def test_partition_watermark_rejects_bad_settings() -> None:
    with pytest.raises(ValueError):
        PartitionWatermark(allowed_lateness_s=-1)
    with pytest.raises(ValueError):
        PartitionWatermark(idle_timeout_s=0)


def _window_figures(order: list[int]) -> list[int]:
    """Counts in the last 15 min, against the watermark, after events arrive in `order`."""
    w = Watermark(allowed_lateness_s=0)
    win: RollingWindow[int] = RollingWindow()
    for s in order:
        w.observe(at(s))
        win.add(at(s), s)
    now = w.current
    assert now is not None
    win.prune(now)
    return sorted(item for _, item in win.within(now, 15))


def test_rolling_window_uses_event_time_not_arrival() -> None:
    times = [0, 100, 200, 3000, 3500, 3599, 3600]
    expected = [3000, 3500, 3599, 3600]  # (3600 - 900, 3600]
    assert _window_figures(times) == expected
    assert _window_figures(list(reversed(times))) == expected  # same figures whatever the arrival order/speed


def test_rolling_window_excludes_items_ahead_of_now_and_prunes() -> None:
    win: RollingWindow[str] = RollingWindow(horizon_min=60)
    win.add(at(0), "old")
    win.add(at(3000), "mid")
    win.add(at(4000), "future")
    assert list(win.within(at(3700), 60)) == [(at(3000), "mid")]
    win.prune(at(3700))
    assert len(win) == 2  # "old" is older than 60 min


def _tracker_events() -> list[agent_events_pb2.AgentEvent]:
    return [
        agent_event("a1", 0, "logged_in", team_id="t1"),
        agent_event("a1", 10, "ready"),
        agent_event("a1", 70, "reserved", call_id="c1"),
        agent_event("a1", 75, "talking", call_id="c1"),
        agent_event("a1", 175, "on_hold", call_id="c1"),
        agent_event("a1", 195, "talking", call_id="c1"),
        agent_event("a1", 255, "after_call_work", call_id="c1"),
        agent_event("a1", 285, "not_ready", reason=agent_events_pb2.NOT_READY_REASON_BREAK),
        agent_event("a1", 885, "ready"),
        agent_event("a1", 985, "logged_out"),
    ]


def test_state_intervals_closed_on_next_event() -> None:
    t = AgentStateTracker(allowed_lateness_s=0)
    out = t.process_batch(_tracker_events())
    got = [(i.state, i.reason, i.duration_s) for i in out]
    assert got == [
        ("not_ready", "login", 10.0), ("ready", "", 60.0), ("reserved", "", 5.0), ("talking", "", 100.0),
        ("hold", "", 20.0), ("talking", "", 60.0), ("acw", "", 30.0), ("not_ready", "break", 600.0),
        ("ready", "", 100.0),
    ]
    assert all(i.team_id == "t1" and i.version == 1 for i in out)
    assert logged_in_seconds(out) == 985.0
    r = rollup_states(out)
    # productive: ready 160 + reserved 5 + talking 160 + hold 20 + acw 30 = 375; busy 210; available 165
    assert (r.logged_in_s, r.productive_s, r.busy_s, r.available_idle_s) == (985.0, 375.0, 210.0, 165.0)
    assert kpis.occupancy(r) == pytest.approx(100 * 210 / 375)
    status = t.status("a1")
    assert status is not None and status.state == "logged_out" and status.since == at(985)


def test_state_intervals_reordered_and_duplicated_are_revised() -> None:
    events = _tracker_events()
    t = AgentStateTracker(allowed_lateness_s=0)
    shuffled = events[::-1] + events[:3]  # reversed, then three duplicates
    out = t.process_batch(shuffled)
    assert t.stats.duplicates == 3
    latest: dict[datetime, tuple[str, float]] = {}
    for i in out:
        latest[i.start] = (i.state, i.duration_s)
    in_order = AgentStateTracker(allowed_lateness_s=0).process_batch(events)
    assert latest == {i.start: (i.state, i.duration_s) for i in in_order}


def test_late_event_splits_interval() -> None:
    t = AgentStateTracker(allowed_lateness_s=0)
    t.process_batch([agent_event("a2", 0, "ready"), agent_event("a2", 100, "talking")])
    out = t.process_batch([agent_event("a2", 40, "not_ready", reason=agent_events_pb2.NOT_READY_REASON_LUNCH)])
    assert [(i.state, i.reason, i.start, i.duration_s, i.version) for i in out] == [
        ("ready", "", at(0), 40.0, 2), ("not_ready", "lunch", at(40), 60.0, 1)]


def test_too_late_events_are_dropped_and_status_time_in_state() -> None:
    t = AgentStateTracker(allowed_lateness_s=0, retention_s=600)
    t.process_batch([agent_event("a3", 0, "ready"), agent_event("a3", 100, "talking"),
                     agent_event("a3", 2000, "after_call_work")])
    assert t.process_batch([agent_event("a3", 50, "not_ready")]) == []
    assert t.stats.late_dropped == 1
    t.process(agent_event("a3", 2000, "queue_membership_changed", queue_id="q1", member=True))
    assert t.queues_of("a3") == frozenset({"q1"})
    st = t.status("a3")
    assert st is not None and st.state == "acw" and st.time_in_state_s(at(2030)) == 30.0


def test_split_interval_at_boundaries() -> None:
    t = AgentStateTracker(allowed_lateness_s=0)
    (iv,) = t.process_batch([agent_event("a4", 1700, "ready"), agent_event("a4", 1900, "logged_out")])
    parts = split_interval(iv)
    assert [(p.start, p.duration_s) for p in parts] == [(at(1700), 100.0), (at(1800), 100.0)]
    assert sum(p.duration_s for p in parts) == iv.duration_s
    assert parts[0].end - parts[0].start == timedelta(seconds=100)


def test_an_announced_wrap_up_returns_the_agent_to_ready_unless_another_state_came_first() -> None:
    """Asterisk never says when wrap-up ends: the after_call_work announces it (wrap_up_ms) and the agent is
    ready again after it; a pause during the wrap-up overrides that (its ready row is withdrawn)."""
    def acw(agent: str, s: float, wrap_ms: int) -> agent_events_pb2.AgentEvent:
        event = agent_event(agent, s, "after_call_work")
        event.after_call_work.wrap_up_ms = wrap_ms
        return event

    t = AgentStateTracker(allowed_lateness_s=0)
    out = t.process_batch([agent_event("a1", 0, "talking"), acw("a1", 60, 15_000),
                           agent_event("a1", 100, "talking")])
    latest = {(i.start, i.state): i for i in out}
    assert [(i.state, i.duration_s) for i in sorted(latest.values(), key=lambda i: i.start)] == [
        ("talking", 60.0), ("acw", 15.0), ("ready", 25.0)]
    assert t.status("a1") is not None and t.status("a1").state == "talking"  # type: ignore[union-attr]

    t = AgentStateTracker(allowed_lateness_s=0)
    first = t.process_batch([agent_event("a1", 0, "talking"), acw("a1", 60, 15_000),
                             agent_event("a1", 100, "talking")])
    revised = t.process_batch([agent_event("a1", 70, "not_ready")])  # paused during the wrap-up, late
    rows: dict[tuple[datetime, str], float] = {}
    for i in sorted([*first, *revised], key=lambda i: i.version):
        rows[(i.start, i.state)] = i.duration_s
    assert sorted((start, state, d) for (start, state), d in rows.items() if d > 0) == [
        (at(0), "talking", 60.0), (at(60), "acw", 10.0), (at(70), "not_ready", 30.0)]


_KINDS = ("logged_in", "ready", "not_ready", "reserved", "talking", "on_hold", "after_call_work", "logged_out")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(("a1", "a2")), st.integers(0, 600), st.sampled_from(_KINDS),
                          st.sampled_from((0, 0, 20_000))), min_size=1, max_size=40),
       st.randoms(use_true_random=False), st.integers(1, 8))
def test_intervals_derived_per_batch_and_per_event_in_any_order_end_the_same(
        drawn: list[tuple[str, int, str, int]], rng: random.Random, batch: int) -> None:
    """Only the intervals a new point can change are re-derived: whatever the order and the batching, the
    rows written (the last version of each) are those of all the events taken at once in time order."""
    events = []
    for agent, s, kind, wrap_ms in drawn:
        event = agent_event(agent, s, kind)
        if kind == "after_call_work":
            event.after_call_work.wrap_up_ms = wrap_ms
        events.append(event)

    def rows(out: list[StateInterval]) -> set[tuple[str, str, datetime, datetime, str]]:
        latest: dict[tuple[str, datetime], StateInterval] = {}
        for interval in out:
            latest[(interval.agent_id, interval.start)] = interval
        return {(i.agent_id, i.state, i.start, i.end, i.reason) for i in latest.values() if i.duration_s > 0}

    in_time_order = sorted(events, key=lambda e: e.envelope.occurred_at.ToDatetime())
    expected = rows(AgentStateTracker(allowed_lateness_s=0).process_batch(in_time_order))
    shuffled = events[:]
    rng.shuffle(shuffled)
    one_by_one = AgentStateTracker(allowed_lateness_s=0)
    assert rows([i for e in shuffled for i in one_by_one.process(e)]) == expected
    batched = AgentStateTracker(allowed_lateness_s=0)
    assert rows([i for n in range(0, len(shuffled), batch)
                 for i in batched.process_batch(shuffled[n:n + batch])]) == expected
