"""The real-time view of the whole stream, from the states of every partition (issue 18).

The KPI workers of one consumer group each read some partitions. Each publishes, at every real-time tick, the
state it holds for each partition it owns (`PartitionState`, one compacted record per partition); every worker
merges the newest state of every other partition with the views of its own into the figures it serves. A
partition that moves to another worker is continued there from its last state, and the new owner's states
supersede the old owner's: they carry a higher consumer group generation (then a later publication time), so a
stale owner's late record loses. Agent -> team comes from HR's employment events (the record), else from the
switch's log-in, and travels in the same states, so a restarted worker or another replica knows every agent's
team.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeAlias

from callstream.kpi.v1 import kpi_events_pb2

from .agent_states import AgentStateTracker, AgentStatus
from .realtime import Figures, RealtimeSettings, RealtimeView, Snapshot, agents_seen
from .watermark import FixedClock

PartitionState: TypeAlias = kpi_events_pb2.PartitionState
# HR is the record of who is in which team; the switch's log-in says it only when it knows.
TEAM_SOURCES = ("hr", "switch")


def state_key(topic: str, partition: int) -> str:
    """The state topic's key of a source partition (topic without the deployment's prefix)."""
    return f"{topic}:{partition}"


def supersedes(new: PartitionState, old: PartitionState | None) -> bool:
    """Of two states of one partition, the one from the later owner (consumer group generation), then the later
    publication, holds: a stale owner that still publishes after the partition moved never wins."""
    if old is None:
        return True
    return ((new.generation, new.published_at.ToNanoseconds())
            >= (old.generation, old.published_at.ToNanoseconds()))


@dataclass(frozen=True)
class TeamOf:
    team_id: str
    since: datetime
    source: str


class TeamDirectory:
    """Agent -> team: the newest assignment (event time) per source; HR's when it has one."""

    def __init__(self) -> None:
        self._teams: dict[tuple[str, str], TeamOf] = {}

    def learn(self, agent_id: str, team: TeamOf) -> None:
        if team.source not in TEAM_SOURCES:
            raise ValueError(f"unknown team source {team.source!r}; known: {TEAM_SOURCES}")
        held = self._teams.get((agent_id, team.source))
        if held is None or team.since >= held.since:
            self._teams[(agent_id, team.source)] = team

    def learn_state(self, state: PartitionState) -> None:
        for t in state.teams:
            self.learn(t.agent_id, TeamOf(t.team_id, t.since.ToDatetime(tzinfo=UTC), t.source))

    def team_of(self, agent_id: str) -> str:
        for source in TEAM_SOURCES:
            team = self._teams.get((agent_id, source))
            if team is not None:
                return team.team_id
        return ""

    def export(self, into: PartitionState) -> None:
        for (agent_id, source), team in sorted(self._teams.items()):
            entry = into.teams.add(agent_id=agent_id, team_id=team.team_id, source=source)
            entry.since.FromDatetime(team.since)


def export_agents(tracker: AgentStateTracker, agent_ids: Iterable[str], into: PartitionState) -> None:
    for agent_id in sorted(agent_ids):
        status = tracker.status(agent_id)
        if status is None:
            continue
        entry = into.agents.add(agent_id=agent_id, state=status.state, reason=status.reason, team_id=status.team_id,
                                queues=sorted(tracker.queues_of(agent_id)))
        entry.since.FromDatetime(status.since)


def load_agents(tracker: AgentStateTracker, state: PartitionState, teams: TeamDirectory | None = None) -> list[str]:
    """The agents of a partition's state into `tracker` (with their team from `teams` when it knows it); returns
    their ids."""
    for a in state.agents:
        team = (teams.team_of(a.agent_id) if teams is not None else "") or a.team_id
        tracker.load_status(AgentStatus(a.agent_id, a.state, a.reason, a.since.ToDatetime(tzinfo=UTC), team),
                            a.queues)
    return [a.agent_id for a in state.agents]


def merged_snapshots(states: Iterable[PartitionState], settings: RealtimeSettings, teams: TeamDirectory,
                     own: Sequence[RealtimeView] = (), own_agents: AgentStateTracker | None = None,
                     own_as_of: datetime | None = None) -> list[Snapshot]:
    """The center and every queue, from the states of the other partitions and the views of a worker's own
    (`own`, their agents in `own_agents`, all at the worker's watermark `own_as_of`), as of the newest watermark
    of them: each partition counts what its owner applied, and the events it held back up to that moment.

    A worker's own partitions are counted as they are held, not exported and loaded again: that round trip cost
    every tick as much as everything the worker held (a replay's partitions run hours apart, so thousands of
    held calls and events)."""
    states = list(states)
    times = [s.as_of.ToDatetime(tzinfo=UTC) for s in states if s.HasField("as_of")]
    as_of = max([*times, *([own_as_of] if own_as_of is not None else [])], default=None)
    if as_of is None:
        return []
    clock = FixedClock(as_of)
    agents = AgentStateTracker(allowed_lateness_s=settings.allowed_lateness_s, watermark=clock)
    others = RealtimeView(settings, agents=agents, watermark=clock)
    for state in states:
        others.load_state(state)
        load_agents(agents, state, teams)
    others.advance()
    seen = {a.status.agent_id: a for a in agents_seen(agents)}
    if own_agents is not None:  # an agent both in another's state and followed here: the other's (as loaded)
        seen = {a.status.agent_id: a for a in agents_seen(own_agents, teams.team_of)} | seen
    return Figures(settings, [others, *own], [seen[a] for a in sorted(seen)], as_of).snapshots()
