"""A partition's real-time state published and taken in again (issue 18): the merged view of two partitions'
states shows what one view of all their calls shows; a new owner starting from a state does not count a
decided call twice when its events are read again; the newest owner's state wins; HR's team wins."""

from __future__ import annotations

from datetime import timedelta

from kpi_builders import Call, agent_event, at, random_traffic

from callstream.call.v1 import call_events_pb2
from callstream.kpi.v1 import kpi_events_pb2
from callstream_kpi.domain.agent_states import AgentStateTracker
from callstream_kpi.domain.fold import event_time
from callstream_kpi.domain.partition_state import (
    TeamDirectory,
    TeamOf,
    export_agents,
    merged_snapshots,
    supersedes,
)
from callstream_kpi.domain.realtime import RealtimeSettings, RealtimeView
from callstream_kpi.domain.watermark import Watermark

SETTINGS = RealtimeSettings(allowed_lateness_s=0.0)


def calls() -> tuple[list[call_events_pb2.CallEvent], list[call_events_pb2.CallEvent]]:
    """Two partitions' calls: answered, abandoned, waiting; and a call still ahead of its view's watermark."""
    first = [Call("c1").offered(0).queued(0).answered(12, "a1"), Call("c2").offered(5).queued(5),
             Call("c3", queue="q2").offered(10).queued(10).abandoned(50)]
    second = [Call("d1").offered(20).queued(20).answered(45, "a2"), Call("d2", queue="q2").offered(30).queued(30),
              Call("tick").offered(100)]
    return [e for c in first for e in c.events], [e for c in second for e in c.events]


def exported(events: list[call_events_pb2.CallEvent], partition: int) -> kpi_events_pb2.PartitionState:
    view = RealtimeView(SETTINGS)
    view.process_batch(events)
    state = kpi_events_pb2.PartitionState(topic="cc.call-events.v1", partition=partition)
    assert view.watermark.current is not None
    state.as_of.FromDatetime(view.watermark.current)
    view.export_state(state)
    return state


def test_the_merge_of_two_partitions_equals_one_view_of_all_their_calls() -> None:
    first, second = calls()
    whole = RealtimeView(SETTINGS)
    whole.process_batch(first + second)
    merged = merged_snapshots([exported(first, 0), exported(second, 1)], SETTINGS, TeamDirectory())
    assert [s.to_proto() for s in merged] == [s.to_proto() for s in whole.snapshots()]
    assert merged[0].calls_waiting == 2 and merged[0].windows[0].offered == 3


def test_a_workers_own_views_count_as_their_exported_states_would() -> None:
    """A worker merges its own partitions' views as it holds them, not exported and loaded again: the same
    figures, alone or with another worker's states (random traffic, calls held back by the watermark)."""
    settings = RealtimeSettings(allowed_lateness_s=120.0)
    clock = Watermark(120.0)
    agents = AgentStateTracker(allowed_lateness_s=120.0, watermark=clock)
    views = [RealtimeView(settings, agents=agents, watermark=clock) for _ in range(3)]
    for n, agent in enumerate(("a1", "a2", "a3")):
        agents.process(agent_event(agent, 0, "queue_membership_changed", queue_id=f"q{n % 2 + 1}", member=True))
        agents.process(agent_event(agent, 5, "ready"))
    events = random_traffic(19, calls=240, span_s=3600.0)
    for ev in events[:len(events) * 2 // 3]:
        clock.observe(event_time(ev))
        views[int(ev.call_id.rsplit("-", 1)[1]) % 3].on_call_event(ev)
    for view in views:
        view.advance()
    assert clock.current is not None
    states = []
    for partition, view in enumerate(views):
        state = kpi_events_pb2.PartitionState(topic="cc.call-events.v1", partition=partition)
        state.as_of.FromDatetime(clock.current)
        view.export_state(state)
        export_agents(agents, ["a1", "a2", "a3"] if partition == 0 else [], state)
        states.append(state)
    teams = TeamDirectory()
    teams.learn("a2", TeamOf("blue", at(0), "hr"))
    exported = [s.to_proto() for s in merged_snapshots(states, settings, teams)]
    assert exported[0].calls_waiting > 0 and exported[0].windows[0].provisional > 0, "held calls are counted"
    assert any(s.scope.id == "blue" for s in exported), "HR's team is the agent's"
    own = merged_snapshots([], settings, teams, views, agents, clock.current)
    mixed = merged_snapshots(states[:1], settings, teams, views[1:], agents, clock.current)
    assert [s.to_proto() for s in own] == exported
    assert [s.to_proto() for s in mixed] == exported


def test_a_new_owner_does_not_count_a_decided_call_again() -> None:
    first, _ = calls()
    state = exported(first + [e for e in Call("late").offered(200).events], 0)
    owner = RealtimeView(SETTINGS)
    owner.load_state(state)
    owner.process_batch(first)  # read again after the last committed offset
    figures = owner.window_figures()[0]
    assert (figures.offered, figures.answered, figures.abandoned) == (2, 1, 1)
    waiting = owner.snapshot()
    assert waiting is not None and waiting.calls_waiting == 1


def test_the_later_owner_wins() -> None:
    old = kpi_events_pb2.PartitionState(generation=3)
    old.published_at.FromDatetime(at(100))
    new = kpi_events_pb2.PartitionState(generation=4)
    new.published_at.FromDatetime(at(50))  # an earlier clock, a later generation
    assert supersedes(new, old) and not supersedes(old, new) and supersedes(old, None)


def test_hr_team_wins_over_the_switch_and_the_newest_holds() -> None:
    teams = TeamDirectory()
    teams.learn("a1", TeamOf("switch-team", at(0), "switch"))
    assert teams.team_of("a1") == "switch-team"
    teams.learn("a1", TeamOf("red", at(0), "hr"))
    teams.learn("a1", TeamOf("blue", at(0) + timedelta(days=1), "hr"))
    teams.learn("a1", TeamOf("old", at(0) - timedelta(days=1), "hr"))
    assert teams.team_of("a1") == "blue" and teams.team_of("nobody") == ""
