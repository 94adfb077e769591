"""Agent events -> state intervals (ready, reserved, talking, hold, acw, not_ready, logged_out).

An interval is closed by the agent's next state change. An `after_call_work` that announces its wrap-up
(`wrap_up_ms`, a switch such as Asterisk that never reports the end of wrap-up) implies a return to ready when
it is over, unless another state change came first. Events are kept per agent, sorted by
(event time, kind order, event id), for `retention_s` of event time behind the watermark: a late event
inside that span splits or shortens the interval it falls in and the touched intervals are re-emitted
with a higher `version` (the `agent_state_intervals` table keeps the highest version per
(agent, started_at, state)). Older events are dropped and counted (`stats.late_dropped`).
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TypeAlias

from callstream.agent.v1 import agent_events_pb2

from .kpis import Rollup
from .watermark import EventClock, Watermark, split_by_interval

AgentEvent: TypeAlias = agent_events_pb2.AgentEvent

STATES: tuple[str, ...] = ("ready", "reserved", "talking", "hold", "acw", "not_ready", "logged_out")
PRODUCTIVE = frozenset({"ready", "reserved", "talking", "hold", "acw"})  # kpis.md #1 (reserved = ringing)
BUSY = frozenset({"talking", "hold", "acw"})  # occupancy numerator (#13)
AVAILABLE = frozenset({"ready", "reserved"})  # occupancy's available idle
# A log-in puts the agent in not_ready ("login") until the first ready / not_ready event.
LOGIN_REASON = "login"

_STATE_OF_KIND = {
    "logged_in": "not_ready",
    "logged_out": "logged_out",
    "ready": "ready",
    "not_ready": "not_ready",
    "reserved": "reserved",
    "talking": "talking",
    "on_hold": "hold",
    "after_call_work": "acw",
}
_KIND_RANK = {k: i for i, k in enumerate(
    ("logged_in", "not_ready", "ready", "reserved", "talking", "on_hold", "after_call_work", "logged_out"))}


def _reason(event: AgentEvent, kind: str) -> str:
    if kind == "logged_in":
        return LOGIN_REASON
    if kind == "not_ready":
        name = agent_events_pb2.NotReadyReason.Name(event.not_ready.reason)
        return name.removeprefix("NOT_READY_REASON_").lower()
    return ""


@dataclass(frozen=True)
class StateInterval:
    agent_id: str
    state: str
    start: datetime
    end: datetime
    reason: str = ""
    team_id: str = ""
    version: int = 1

    @property
    def duration_s(self) -> float:
        return (self.end - self.start).total_seconds()

    def same_content(self, other: StateInterval) -> bool:
        """Equal but for the version (compared field by field: this runs for every interval a batch touches,
        and two `replace` copies per comparison were most of the worker's CPU)."""
        return (self.start == other.start and self.end == other.end and self.state == other.state
                and self.reason == other.reason and self.agent_id == other.agent_id and self.team_id == other.team_id)


@dataclass(frozen=True, order=True)
class _Point:
    at: datetime
    rank: int
    event_id: str
    state: str = field(compare=False)
    reason: str = field(compare=False)
    # A return to ready implied by an announced wrap-up: only in effect when it directly follows its ACW.
    implied: bool = field(default=False, compare=False)


@dataclass
class _Agent:
    agent_id: str
    team_id: str = ""
    points: list[_Point] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)
    queues: set[str] = field(default_factory=set)
    emitted: dict[datetime, StateInterval] = field(default_factory=dict)


@dataclass
class AgentStateStats:
    events: int = 0
    duplicates: int = 0
    late_dropped: int = 0
    emitted: int = 0
    revisions: int = 0


@dataclass(frozen=True)
class AgentStatus:
    agent_id: str
    state: str
    reason: str
    since: datetime
    team_id: str = ""

    def time_in_state_s(self, now: datetime) -> float:
        return max(0.0, (now - self.since).total_seconds())


class AgentStateTracker:
    def __init__(self, *, allowed_lateness_s: float = 10.0, retention_s: float = 3600.0,
                 watermark: EventClock | None = None) -> None:
        """`watermark`: one observed by its owner (e.g. per Kafka partition); by default the tracker's own."""
        self._own_watermark: Watermark | None = None
        if watermark is None:
            watermark = self._own_watermark = Watermark(allowed_lateness_s)
        self.watermark: EventClock = watermark
        self.retention = timedelta(seconds=retention_s)
        self.stats = AgentStateStats()
        self._agents: dict[str, _Agent] = {}

    def process(self, event: AgentEvent) -> list[StateInterval]:
        """Take one agent event; returns intervals it closes or revises."""
        agent, since = self._take(event)
        return [] if agent is None or since is None else self._emit(agent, since)

    def process_batch(self, events: Iterable[AgentEvent]) -> list[StateInterval]:
        """Take a batch; returns the intervals it closes or revises, each once with its content at the end of
        the batch (an interval revised twice in one batch is written once)."""
        touched: dict[str, datetime] = {}  # agent id -> the earliest point the batch added to it
        for ev in events:
            agent, since = self._take(ev)
            if agent is not None and since is not None:
                earliest = touched.get(agent.agent_id)
                touched[agent.agent_id] = since if earliest is None else min(earliest, since)
        out = [interval for agent_id, since in touched.items()
               for interval in self._emit(self._agents[agent_id], since)]
        self.prune()
        return out

    def _take(self, event: AgentEvent) -> tuple[_Agent | None, datetime | None]:
        """Add the event's state change to its agent: (the agent, the time of its earliest new point), or
        (None, None) when it changes no state (a duplicate, too late, a queue membership, a skills change)."""
        self.stats.events += 1
        kind = event.WhichOneof("kind") or ""
        agent = self._agents.get(event.agent_id)
        if agent is None:
            agent = self._agents[event.agent_id] = _Agent(event.agent_id)
        event_id = event.envelope.event_id
        if event_id and event_id in agent.ids:
            self.stats.duplicates += 1
            return None, None
        at = event.envelope.occurred_at.ToDatetime(tzinfo=UTC)
        if agent.points and at < agent.points[0].at and self._pruned_before(agent):
            self.stats.late_dropped += 1
            return None, None
        if event_id:
            agent.ids.add(event_id)
        if self._own_watermark is not None:
            self._own_watermark.observe(at)
        if kind == "logged_in" and event.logged_in.team_id:
            agent.team_id = event.logged_in.team_id
        if kind == "queue_membership_changed":
            qm = event.queue_membership_changed
            (agent.queues.add if qm.member else agent.queues.discard)(qm.queue_id)
            return None, None
        state = _STATE_OF_KIND.get(kind)
        if state is None:  # skills changes and unknown kinds do not change the state
            return None, None
        bisect.insort(agent.points, _Point(at, _KIND_RANK.get(kind, 99), event_id, state, _reason(event, kind)))
        if kind == "after_call_work" and event.after_call_work.wrap_up_ms:
            end = at + timedelta(milliseconds=event.after_call_work.wrap_up_ms)
            bisect.insort(agent.points, _Point(end, _KIND_RANK["ready"], f"{event_id}/wrap-up-over", "ready", "",
                                               implied=True))
        return agent, at

    def prune(self) -> None:
        """Forget points older than watermark - retention, keeping the one that is the state at the cut-off."""
        now = self.watermark.current
        if now is None:
            return
        cutoff = now - self.retention
        for agent in self._agents.values():
            idx = bisect.bisect_left([p.at for p in agent.points], cutoff)
            if idx > 1:
                dropped = agent.points[: idx - 1]
                agent.points = agent.points[idx - 1:]
                for p in dropped:
                    agent.ids.discard(p.event_id)
                    agent.emitted.pop(p.at, None)

    def _pruned_before(self, agent: _Agent) -> bool:
        now = self.watermark.current
        return now is not None and agent.points[0].at < now - self.retention

    @staticmethod
    def _in_effect(points: list[_Point], i: int) -> bool:
        """An implied return to ready counts only right after an ACW (another state change during the wrap-up,
        a pause say, overrides it)."""
        return not points[i].implied or (i > 0 and points[i - 1].state == "acw")

    def _emit(self, agent: _Agent, since: datetime) -> list[StateInterval]:
        """The intervals that points added at or after `since` close or revise. Only the intervals from the
        last point in effect before `since` on can change: earlier ones are between points that did not move
        (every event re-deriving all of an agent's intervals of the last hour made the tracker quadratic)."""
        points = agent.points
        first_new = bisect.bisect_left(points, since, key=lambda p: p.at)
        lo = next((i for i in range(first_new - 1, -1, -1) if self._in_effect(points, i)), 0)
        effective = [points[i] for i in range(lo, len(points)) if self._in_effect(points, i)]
        # Consecutive points of the same state are not merged: a late event then only shortens or splits
        # rows, never leaves a stale one behind (rows are upserted by (agent, started_at, state)).
        intervals = [StateInterval(agent.agent_id, a.state, a.at, b.at, a.reason, agent.team_id)
                     for a, b in itertools.pairwise(effective) if b.at > a.at]
        out: list[StateInterval] = []
        live = {interval.start for interval in intervals}
        start_of_change = points[lo].at if points else since
        for start, withdrawn in list(agent.emitted.items()):
            if start >= start_of_change and start not in live and withdrawn.duration_s > 0:
                # an implied return to ready that a state change during the wrap-up overrode: its row is
                # revised to nothing (zero length), so no ready time is counted that never was
                gone = replace(withdrawn, end=withdrawn.start, version=withdrawn.version + 1)
                agent.emitted[start] = gone
                self.stats.revisions += 1
                out.append(gone)
        for interval in intervals:
            prev = agent.emitted.get(interval.start)
            if prev is not None and prev.same_content(interval):
                continue
            interval = replace(interval, version=1 if prev is None else prev.version + 1)
            self.stats.revisions += prev is not None
            agent.emitted[interval.start] = interval
            out.append(interval)
        self.stats.emitted += len(out)
        return out

    def status(self, agent_id: str) -> AgentStatus | None:
        agent = self._agents.get(agent_id)
        if agent is None:
            return None
        now = self.watermark.current
        points = agent.points

        def in_effect(i: int) -> bool:
            # an implied return to ready counts right after its ACW, and not before its time has come
            p = points[i]
            return not p.implied or (i > 0 and points[i - 1].state == "acw" and now is not None and p.at <= now)

        # From the newest point back, only as far as the current state goes: this runs for every agent at
        # every real-time tick.
        effective = (points[i] for i in range(len(points) - 1, -1, -1) if in_effect(i))
        last = next(effective, None)
        if last is None:
            return None
        since = last.at
        for p in effective:  # same state re-announced: time in state runs from the first
            if (p.state, p.reason) != (last.state, last.reason):
                break
            since = p.at
        return AgentStatus(agent_id, last.state, last.reason, since, agent.team_id)

    def statuses(self) -> list[AgentStatus]:
        return [s for a in sorted(self._agents) if (s := self.status(a)) is not None]

    def load_status(self, status: AgentStatus, queues: Iterable[str]) -> None:
        """An agent's current state as another tracker last reported it (its partition's last state): the new
        owner of the partition, or the view merged from every partition, starts from it. An agent this tracker
        already follows keeps what it has."""
        if status.agent_id in self._agents:
            return
        agent = self._agents[status.agent_id] = _Agent(status.agent_id, team_id=status.team_id, queues=set(queues))
        agent.points.append(_Point(status.since, _KIND_RANK.get(status.state, 0), "", status.state, status.reason))

    def forget(self, agent_id: str) -> None:
        """Stop following an agent (its partition moved to another worker, which goes on from its last state)."""
        self._agents.pop(agent_id, None)

    def queues_of(self, agent_id: str) -> frozenset[str]:
        agent = self._agents.get(agent_id)
        return frozenset(agent.queues) if agent else frozenset()

    def team_of(self, agent_id: str) -> str:
        agent = self._agents.get(agent_id)
        return agent.team_id if agent else ""


def split_interval(interval: StateInterval, minutes: int = 30) -> list[StateInterval]:
    """Cut at interval boundaries, so each 30-minute bucket gets the seconds that happened in it. A zero-length
    interval (a withdrawn one) stays one row, which replaces what was written for it."""
    pieces = [replace(interval, start=a, end=b) for a, b in split_by_interval(interval.start, interval.end, minutes)]
    return pieces or [interval]


def logged_in_seconds(intervals: Iterable[StateInterval]) -> float:
    return sum(i.duration_s for i in intervals if i.state != "logged_out")


def rollup_states(intervals: Iterable[StateInterval]) -> Rollup:
    """Agent-state counters of a Rollup (the intervals already cut to one bucket and scope)."""
    logged = productive = busy = available = 0.0
    for i in intervals:
        d = i.duration_s
        if i.state == "logged_out":
            continue
        logged += d
        productive += d if i.state in PRODUCTIVE else 0.0
        busy += d if i.state in BUSY else 0.0
        available += d if i.state in AVAILABLE else 0.0
    return Rollup(logged_in_s=logged, productive_s=productive, busy_s=busy, available_idle_s=available)
