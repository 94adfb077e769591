"""Real-time (wallboard) figures per queue and for the center: final as of the watermark, provisional as of the
newest event.

Events are buffered per call and applied in event-time order once the watermark passes them, so the final
figures as of a given watermark are the same whatever the arrival order (within the allowed lateness)
and replay speed. An event already behind the watermark when it arrives is applied at the next
`advance` (it does not revise figures already published).

So that the allowed lateness does not delay the wallboard, each figure also counts, provisionally, the calls
that the events still buffered decide (a copy of the call's state with them applied, in event-time order): a
call answered 1 s ago is counted at once. A late event revises it (the copy is taken again at each figure),
and the watermark's decision is final; a call is counted once, provisionally or finally, never both.

Rolling windows (15/30/60 min by default) count each call once, at the moment its fate was decided
(answered, abandoned, or left the queue to overflow/callback): offered = calls decided in the window.
Undefined ratios are `None` here and NaN in the proto (proto3 doubles have no null).

A call's wait is held, not whether it was within its queue's T or a short abandon: each figure takes the
thresholds in force when it is computed, so a queue's changed target re-states its rolling windows at once,
as the KPI API re-states history (it reads the queue settings at query time).
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from copy import copy
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from itertools import chain

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from callstream.agent.v1 import agent_events_pb2
from callstream.call.v1 import call_events_pb2
from callstream.kpi.v1 import kpi_events_pb2
from callstream_core.envelope import deterministic_event_id, new_envelope

from . import kpis
from .agent_states import AgentStateTracker, AgentStatus
from .fold import KIND_RANK, CallEvent, event_kind, event_time
from .targets import CENTER, QueueSettings, QueueTargets, ScopeRef
from .watermark import ROLLING_WINDOWS_MIN, EventClock, RollingWindow, Watermark


@dataclass(frozen=True)
class RealtimeSettings:
    allowed_lateness_s: float = 10.0
    windows_min: tuple[int, ...] = ROLLING_WINDOWS_MIN
    # Each queue's SL threshold and goal and short-abandon threshold (the worker refreshes them from the
    # queue settings).
    targets: QueueTargets = field(default_factory=QueueTargets)
    # A finished call (ended, abandoned, blocked, ...) is forgotten this long after its last event; one that
    # never finishes after session_timeout_s.
    retention_s: float = 600.0
    session_timeout_s: float = 4 * 3600.0
    # Ids of forgotten calls are kept this long to drop late duplicates.
    dedup_retention_s: float = 24 * 3600.0
    # A queue's expected wait is the router's newest quote to a caller queued there; one older than this (as of
    # the watermark) no longer says what a caller would wait now, and the wallboard shows "unknown" instead.
    quote_valid_s: float = 900.0
    # Provisional figures take the buffered events up to this far ahead of the watermark. Live, the newest event
    # is the allowed lateness (10 s) ahead plus the partitions' skew, well within 60 s; in a replay a slow
    # partition can hold the watermark days behind, and counting days of calls into windows that end at the
    # watermark would be neither a fresher figure nor cheap (every tick copies each call it takes).
    provisional_ahead_s: float = 60.0


@dataclass(frozen=True)
class Decided:
    """The fate of one call, stamped at the moment it was decided."""

    queue_id: str
    outcome: str  # answered | abandoned | other
    wait_s: float  # queue time (0 when not queued)
    # An abandoned call's wait from its first queueing (or ACD entry) to the abandon, against the queue's
    # short-abandon threshold; 0 for the other outcomes.
    abandoned_after_s: float = 0.0
    call_id: str = ""


@dataclass
class _Counts:
    """Raw counters of the calls decided in one window and scope (summed in window order, as `sum` would)."""

    offered: int = 0
    answered: int = 0
    answered_within_t: int = 0
    abandoned: int = 0
    short_abandons: int = 0
    sum_wait_answered: float = 0
    provisional: int = 0

    def add(self, d: Decided, targets: QueueSettings, provisional: bool = False) -> None:
        """`targets`: those of the call's queue; `provisional`: decided by an event the watermark has not passed."""
        self.offered += 1
        self.provisional += provisional
        if d.outcome == "answered":
            self.answered += 1
            self.answered_within_t += d.wait_s <= targets.sl_threshold_s
            self.sum_wait_answered += d.wait_s
        elif d.outcome == "abandoned":
            self.abandoned += 1
            self.short_abandons += d.abandoned_after_s <= targets.short_abandon_s


@dataclass
class _Live:
    call_id: str
    pending: list[tuple[datetime, int, str, CallEvent]] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)
    last_at: datetime | None = None
    queue_id: str = ""
    acd_entry: datetime | None = None
    first_queued: datetime | None = None
    waiting_since: datetime | None = None
    waiting_queue: str = ""
    decided: bool = False
    ended: bool = False
    # (time, kind rank) the caller last left a queue: a queued event before it does not make the call wait.
    last_left: tuple[datetime, int] | None = None


@dataclass(frozen=True)
class WindowFigures:
    window_minutes: int
    offered: int
    answered: int
    answered_within_t: int
    abandoned: int
    short_abandons: int
    service_level: float | None
    asa_s: float | None
    abandon_rate: float | None
    provisional: int = 0  # of `offered`, decided by events the watermark has not passed yet

    def to_proto(self) -> kpi_events_pb2.WindowFigures:
        def f(v: float | None) -> float:
            return math.nan if v is None else v

        return kpi_events_pb2.WindowFigures(
            window_minutes=self.window_minutes, offered=self.offered, answered=self.answered,
            answered_within_t=self.answered_within_t, abandoned=self.abandoned, short_abandons=self.short_abandons,
            service_level=f(self.service_level), asa_s=f(self.asa_s), abandon_rate=f(self.abandon_rate),
            provisional=self.provisional)


@dataclass(frozen=True)
class AgentNow:
    agent_id: str
    state: str
    reason: str
    time_in_state_s: float


@dataclass(frozen=True)
class Snapshot:
    scope: ScopeRef
    as_of: datetime
    calls_waiting: int
    longest_wait_s: float
    agents_by_state: dict[str, int]
    windows: list[WindowFigures]
    agents: list[AgentNow]
    # 0 with a ready agent and nobody waiting, else the router's newest quote to a caller queued in scope (the
    # largest of the queues' for the center); -1 unknown.
    expected_wait_s: float = -1.0
    # The scope's SL threshold T and goal (%) in force: the queue's, or the defaults for the center (whose
    # figures count each call against its own queue's T).
    sl_threshold_s: float = 20.0
    sl_goal_pct: float = 80.0
    # The newest event the window figures' provisional calls and calls_waiting include; None when no event is held
    # ahead of as_of.
    provisional_as_of: datetime | None = None

    def to_proto(self, source: str = "kpi-stream") -> kpi_events_pb2.RealtimeSnapshot:
        env = new_envelope(source, self.as_of, deterministic_event_id(
            "realtime", self.scope.kind, self.scope.id, self.as_of.isoformat()))
        msg = kpi_events_pb2.RealtimeSnapshot(
            envelope=env, scope=self.scope.to_proto(), calls_waiting=self.calls_waiting,
            longest_wait_s=self.longest_wait_s, windows=[w.to_proto() for w in self.windows],
            expected_wait_s=self.expected_wait_s, service_level_threshold_s=self.sl_threshold_s,
            service_level_target=self.sl_goal_pct,
            agents=[kpi_events_pb2.AgentStatus(agent_id=a.agent_id, state=a.state, reason=a.reason,
                                               time_in_state_s=a.time_in_state_s) for a in self.agents])
        msg.as_of.FromDatetime(self.as_of)
        if self.provisional_as_of is not None:
            msg.provisional_as_of.FromDatetime(self.provisional_as_of)
        for state, count in self.agents_by_state.items():
            msg.agents_by_state[state] = count
        return msg


def state_key(state: str, reason: str) -> str:
    """Key of `agents_by_state`: the state, with not_ready split by reason ("not_ready:break")."""
    return f"not_ready:{reason}" if state == "not_ready" and reason else state


class RealtimeView:
    def __init__(self, settings: RealtimeSettings | None = None, agents: AgentStateTracker | None = None,
                 watermark: EventClock | None = None) -> None:
        """`watermark`: one observed by its owner (e.g. per Kafka partition); by default the view's own,
        the largest event time it saw."""
        self.settings = settings or RealtimeSettings()
        self._own_watermark: Watermark | None = None
        if watermark is None:
            watermark = self._own_watermark = Watermark(self.settings.allowed_lateness_s)
        self.watermark: EventClock = watermark
        self.agents = agents or AgentStateTracker(allowed_lateness_s=self.settings.allowed_lateness_s)
        self._calls: dict[str, _Live] = {}
        self._forgotten: dict[str, datetime] = {}
        # An advance costs what changed, not what is held: calls with buffered events are kept in a set,
        # forgetting is by deadline in heaps (entries made stale by later events are skipped).
        self._with_pending: set[str] = set()
        self._forget_calls: list[tuple[datetime, datetime, str]] = []  # (deadline, last event time, call id)
        self._forget_ids: list[tuple[datetime, str]] = []
        self._window: RollingWindow[Decided] = RollingWindow(max(self.settings.windows_min))
        self.queues: set[str] = set()
        self._quotes: dict[str, tuple[datetime, float]] = {}  # queue -> (when, expected wait s) of the newest
        self._newest: datetime | None = None  # the newest call event buffered: what provisional figures reach

    # -- input ------------------------------------------------------------------------------------
    def on_call_event(self, event: CallEvent) -> None:
        if event.call_id in self._forgotten:
            return
        call = self._calls.get(event.call_id)
        if call is None:
            call = self._calls[event.call_id] = _Live(event.call_id)
        event_id = event.envelope.event_id
        if event_id and event_id in call.ids:
            return
        call.ids.add(event_id)
        at = event_time(event)
        if self._own_watermark is not None:
            self._own_watermark.observe(at)
        call.last_at = at if call.last_at is None else max(call.last_at, at)
        self._newest = at if self._newest is None else max(self._newest, at)
        kind = event_kind(event)
        bisect.insort(call.pending, (at, KIND_RANK.get(kind, 99), event_id, event), key=lambda p: p[:3])
        self._with_pending.add(event.call_id)

    def on_wait_quote(self, queue_id: str, at: datetime, expected_wait_s: float) -> None:
        """The router queued a caller in `queue_id` at `at`, quoting `expected_wait_s` (negative: no estimate).
        The newest quote by event time is the queue's expected wait."""
        newest = self._quotes.get(queue_id)
        if newest is None or at >= newest[0]:
            self._quotes[queue_id] = (at, expected_wait_s if expected_wait_s >= 0 else -1.0)
            self.queues.add(queue_id)

    def on_agent_event(self, event: agent_events_pb2.AgentEvent) -> None:
        if self._own_watermark is not None:
            self._own_watermark.observe(event.envelope.occurred_at.ToDatetime(tzinfo=UTC))
        self.agents.process(event)

    def process_batch(self, call_events: Iterable[CallEvent] = (),
                      agent_events: Iterable[agent_events_pb2.AgentEvent] = ()) -> None:
        for ev in call_events:
            self.on_call_event(ev)
        for aev in agent_events:
            self.on_agent_event(aev)
        self.advance()

    # -- time -------------------------------------------------------------------------------------
    def advance(self) -> None:
        """Apply every buffered event up to the watermark, forget old calls, prune windows."""
        now = self.watermark.current
        if now is None:
            return
        s = self.settings
        for call_id in list(self._with_pending):
            call = self._calls[call_id]
            while call.pending and call.pending[0][0] <= now:
                at, _, _, ev = call.pending.pop(0)
                decided = self._apply(call, at, ev)
                if decided is not None:
                    self._window.add(*decided)
            if not call.pending:
                self._with_pending.discard(call_id)
                assert call.last_at is not None
                # Forgotten `retention_s` after its last event once it ended, else after the session time-out.
                keep = s.retention_s if call.ended else s.session_timeout_s
                heapq.heappush(self._forget_calls, (call.last_at + timedelta(seconds=keep), call.last_at, call_id))
        while self._forget_calls and self._forget_calls[0][0] < now:
            _, last_at, call_id = heapq.heappop(self._forget_calls)
            held = self._calls.get(call_id)
            if held is None or held.pending or held.last_at != last_at:
                continue  # stale: later events moved its deadline (a new entry was pushed then)
            until = last_at + timedelta(seconds=s.dedup_retention_s)
            self._forgotten[call_id] = until
            heapq.heappush(self._forget_ids, (until, call_id))
            del self._calls[call_id]
        while self._forget_ids and self._forget_ids[0][0] < now:
            until, call_id = heapq.heappop(self._forget_ids)
            if self._forgotten.get(call_id) == until:
                del self._forgotten[call_id]
        self._window.prune(now)

    def _decide(self, call: _Live, at: datetime, outcome: str) -> tuple[datetime, Decided] | None:
        """The call's fate, the first time it is decided; None after."""
        if call.decided:
            return None
        call.decided = True
        queue = call.queue_id
        wait = (at - call.first_queued).total_seconds() if call.first_queued is not None else 0.0
        abandoned_after = 0.0
        if outcome == "abandoned":
            abandoned_after = (at - (call.first_queued or call.acd_entry or at)).total_seconds()
        return at, Decided(queue, outcome, max(0.0, wait), abandoned_after, call.call_id)

    def _apply(self, call: _Live, at: datetime, ev: CallEvent) -> tuple[datetime, Decided] | None:
        """Apply one event to the call's state; returns the call's fate if this event decides it."""
        decided = None
        kind = event_kind(ev)
        if kind in _LEAVES:
            mark = (at, KIND_RANK[kind])
            call.last_left = mark if call.last_left is None else max(call.last_left, mark)
        if kind == "offered":
            call.queue_id = call.queue_id or ev.offered.context.queue_id
            call.acd_entry = call.acd_entry or at
        elif kind == "queued":
            call.queue_id = call.queue_id or ev.queued.queue_id
            call.first_queued = min(call.first_queued or at, at)
            call.acd_entry = call.acd_entry or at
            if call.last_left is None or (at, KIND_RANK[kind]) > call.last_left:
                call.waiting_since, call.waiting_queue = at, ev.queued.queue_id or call.queue_id
        elif kind == "ringing":
            call.queue_id = call.queue_id or ev.ringing.queue_id
            call.acd_entry = call.acd_entry or at
        elif kind == "answered":
            call.queue_id = call.queue_id or ev.answered.queue_id
            call.waiting_since = None
            decided = self._decide(call, at, "answered")
        elif kind == "abandoned":
            call.queue_id = call.queue_id or ev.abandoned.queue_id
            call.waiting_since, call.ended = None, True
            decided = self._decide(call, at, "abandoned")
        elif kind in ("callback_requested", "overflowed"):
            call.waiting_since = None
            decided = self._decide(call, at, "other")
            call.ended = call.ended or kind == "callback_requested" or (
                ev.overflowed.destination != call_events_pb2.CallOverflowed.DESTINATION_QUEUE)
        elif kind == "blocked" or (kind == "ivr_left"
                                   and ev.ivr_left.outcome != call_events_pb2.IvrLeft.OUTCOME_TO_AGENT):
            call.ended = True  # never reached the ACD: nothing to show, forget it soon
        elif kind == "ended":
            call.waiting_since, call.ended = None, True
            if call.acd_entry is not None:
                decided = self._decide(call, at, "abandoned")
        if call.queue_id:
            self.queues.add(call.queue_id)
        return decided

    def provisional(self, now: datetime) -> tuple[list[tuple[datetime, Decided]], dict[str, _Live]]:
        """The calls the buffered events decide as of `now` (the watermark, or a later moment the figures of
        several views are taken at), and every call with buffered events as they leave it (call id -> a copy of
        its state with them applied); the held state is untouched, so the watermark decides later."""
        decided: list[tuple[datetime, Decided]] = []
        ahead: dict[str, _Live] = {}
        until = self.provisional_until(now)
        for call_id in self._with_pending:
            held = self._calls[call_id]
            if held.pending[0][0] > until:
                continue
            call = ahead[call_id] = copy(held)  # shallow: `_apply` sets fields, never the held lists and sets
            for at, _, _, ev in held.pending:
                if at > until:
                    break
                fate = self._apply(call, at, ev)
                if fate is not None:
                    decided.append(fate)
        return decided, ahead

    def provisional_until(self, now: datetime) -> datetime:
        """The newest event time provisional figures take: the newest buffered, at most `provisional_ahead_s`
        ahead of `now`."""
        limit = now + timedelta(seconds=self.settings.provisional_ahead_s)
        return now if self._newest is None else min(self._newest, limit)

    def decided_within(self, now: datetime, minutes: int) -> Iterator[tuple[datetime, Decided]]:
        """(when, fate) of the calls the watermark decided in the `minutes` up to `now`, oldest first."""
        return self._window.within(now, minutes)

    def add_waiting(self, ahead: dict[str, _Live], into: dict[str, tuple[int, datetime]]) -> None:
        """Into `into` (queue -> calls waiting, since when the longest has waited): the calls held here, each as
        its buffered events leave it (`ahead`: from `provisional`)."""
        for held in self._calls.values():
            c = ahead.get(held.call_id, held)
            if c.waiting_since is None:
                continue
            count, oldest = into.get(c.waiting_queue, (0, c.waiting_since))
            into[c.waiting_queue] = (count + 1, min(oldest, c.waiting_since))

    @property
    def quotes(self) -> dict[str, tuple[datetime, float]]:
        """queue -> (when, expected wait s) of the router's newest quote."""
        return self._quotes

    # -- partition state (shared between workers) ---------------------------------------------------
    def export_state(self, into: kpi_events_pb2.PartitionState) -> None:
        """Everything this view holds into `into`: the calls decided in the longest window, the calls held, and
        the events not applied yet. A view built by `load_state` from it gives the same figures."""
        for at, d in self._window.entries():
            into.decided.add(call_id=d.call_id, at=_timestamp(at), queue_id=d.queue_id, outcome=d.outcome,
                             wait_s=d.wait_s, abandoned_after_s=d.abandoned_after_s)
        for call in self._calls.values():
            live = into.live.add(call_id=call.call_id, queue_id=call.queue_id, waiting_queue=call.waiting_queue,
                                 decided=call.decided, ended=call.ended,
                                 last_left_rank=call.last_left[1] if call.last_left else 0)
            for name, value in (("last_at", call.last_at), ("acd_entry", call.acd_entry),
                                ("first_queued", call.first_queued), ("waiting_since", call.waiting_since),
                                ("last_left_at", call.last_left[0] if call.last_left else None)):
                if value is not None:
                    getattr(live, name).FromDatetime(value)
            into.pending.extend(ev for *_, ev in call.pending)
        for queue_id, (at, wait) in sorted(self._quotes.items()):
            into.quotes.add(queue_id=queue_id, at=_timestamp(at), expected_wait_s=wait)

    def load_state(self, state: kpi_events_pb2.PartitionState) -> None:
        """Take in what another view exported (`export_state`): a partition's new owner starts from its last
        state, and the view every worker serves is built from the states of all partitions. A decided call is
        remembered as decided, so its events read again (after the last committed offset) are not counted twice."""
        s = self.settings
        held = {lc.call_id for lc in state.live}
        decided = [(_time(d.at), Decided(d.queue_id, d.outcome, d.wait_s, d.abandoned_after_s, d.call_id))
                   for d in state.decided]
        self._window.add_many(decided)
        self.queues.update(d.queue_id for _, d in decided if d.queue_id)
        for at, d in decided:
            if d.call_id not in held and d.call_id not in self._calls:
                until = at + timedelta(seconds=s.dedup_retention_s)
                self._forgotten[d.call_id] = until
                heapq.heappush(self._forget_ids, (until, d.call_id))
        for lc in state.live:
            if lc.call_id in self._calls:
                continue
            call = self._calls[lc.call_id] = _Live(
                lc.call_id, last_at=_time_or_none(lc, "last_at"), queue_id=lc.queue_id,
                acd_entry=_time_or_none(lc, "acd_entry"), first_queued=_time_or_none(lc, "first_queued"),
                waiting_since=_time_or_none(lc, "waiting_since"), waiting_queue=lc.waiting_queue,
                decided=lc.decided, ended=lc.ended)
            left_at = _time_or_none(lc, "last_left_at")
            call.last_left = None if left_at is None else (left_at, lc.last_left_rank)
            if call.queue_id:
                self.queues.add(call.queue_id)
            if call.last_at is not None:
                keep = s.retention_s if call.ended else s.session_timeout_s
                heapq.heappush(self._forget_calls, (call.last_at + timedelta(seconds=keep), call.last_at, call.call_id))
        for ev in state.pending:
            self.on_call_event(ev)
        for quote in state.quotes:
            self.on_wait_quote(quote.queue_id, quote.at.ToDatetime(tzinfo=UTC), quote.expected_wait_s)

    # -- output -----------------------------------------------------------------------------------
    def figures(self) -> Figures:
        """The figures of this view alone, as of its watermark."""
        return Figures(self.settings, [self], agents_seen(self.agents), self.watermark.current)

    def window_figures(self, scope: ScopeRef = CENTER) -> list[WindowFigures]:
        return self.figures().window_figures(scope)

    def snapshot(self, scope: ScopeRef = CENTER) -> Snapshot | None:
        """None until the first event (no "now" yet)."""
        return self.figures().snapshot(scope)

    def snapshots(self) -> list[Snapshot]:
        return self.figures().snapshots()


@dataclass(frozen=True)
class AgentSeen:
    """An agent's status as the figures take it, and the queues it serves."""

    status: AgentStatus
    queues: frozenset[str]


def agents_seen(tracker: AgentStateTracker, team_of: Callable[[str], str] | None = None) -> list[AgentSeen]:
    """Every agent `tracker` follows; `team_of` (HR's directory), when given, names the team where it knows it."""
    out = []
    for status in tracker.statuses():
        team = team_of(status.agent_id) if team_of is not None else ""
        if team and team != status.team_id:
            status = replace(status, team_id=team)
        out.append(AgentSeen(status, tracker.queues_of(status.agent_id)))
    return out


class Figures:
    """The real-time figures of one view or of several at once (the partitions a worker merges: its own views
    as they are, the others' as loaded from their states), as of one moment `now` (None: no event yet).

    The views' calls are disjoint (a call's events are in one partition); each view's events buffered up to
    `now` count provisionally, like those ahead of it. Taken once per tick, for every scope: the provisional
    copies, the calls waiting and the window counts are computed once, in one pass over each view's calls."""

    def __init__(self, settings: RealtimeSettings, views: Sequence[RealtimeView], agents: Sequence[AgentSeen],
                 now: datetime | None) -> None:
        self.settings, self.views, self.agents, self.now = settings, views, agents, now
        self.queues: set[str] = set().union(*(v.queues for v in views))
        self._quotes: dict[str, tuple[datetime, float]] = {}
        for view in views:
            for queue_id, quote in view.quotes.items():
                if queue_id not in self._quotes or quote[0] >= self._quotes[queue_id][0]:
                    self._quotes[queue_id] = quote
        # The queues with a ready agent, for the expected wait of the center and of every queue: once per tick.
        self._ready_in: set[str] = set()
        for seen in agents:
            if seen.status.state == "ready":
                self._ready_in.update(seen.queues)
        self._waiting: dict[str, tuple[int, datetime]] = {}
        self._counts: dict[tuple[int, str], _Counts] = {}
        self._newest: datetime | None = None  # the newest event the provisional figures take, when ahead of now
        if now is None:
            return
        decided: list[tuple[datetime, Decided]] = []
        for view in views:
            view_decided, ahead = view.provisional(now)
            decided += view_decided
            view.add_waiting(ahead, self._waiting)
        self._counts = self._window_counts(now, decided)
        until = max(view.provisional_until(now) for view in views) if views else now
        self._newest = until if until > now else None

    def _window_counts(self, now: datetime, provisional: list[tuple[datetime, Decided]],
                       ) -> dict[tuple[int, str], _Counts]:
        """(window minutes, queue id or "" for the center) -> counts, for every window and scope at once, in one
        pass over the calls decided in the longest window (the views' merged in time order, as one view holding
        them all would add them), then over `provisional` (the calls the buffered events decide); a call counts
        in each window it was decided in."""
        out: dict[tuple[int, str], _Counts] = {}
        targets = self.settings.targets
        windows = [(minutes, now - timedelta(minutes=minutes)) for minutes in self.settings.windows_min]
        for minutes, _ in windows:
            out[(minutes, "")] = _Counts()
        longest = max(self.settings.windows_min)
        decided = [v.decided_within(now, longest) for v in self.views]
        final = heapq.merge(*decided, key=_decided_at) if len(decided) > 1 else chain(*decided)
        for (at, d), ahead in chain(((e, False) for e in final), ((e, True) for e in provisional)):
            queue_targets = targets.of(d.queue_id)
            for minutes, start in windows:
                if at <= start:
                    continue
                key = (minutes, d.queue_id)
                queue = out.get(key)
                if queue is None:
                    queue = out[key] = _Counts()
                out[(minutes, "")].add(d, queue_targets, ahead)
                queue.add(d, queue_targets, ahead)
        return out

    def window_figures(self, scope: ScopeRef = CENTER) -> list[WindowFigures]:
        """None for a team or an agent: a decided call is held without the agent who answered it (the partition
        states carry none), so their call figures are the alerts' (from the contacts) and the KPI API's."""
        if scope.kind not in ("center", "queue"):
            return []
        key = "" if scope.kind == "center" else scope.id
        out: list[WindowFigures] = []
        for minutes in self.settings.windows_min:
            c = self._counts.get((minutes, key), _Counts())
            r = kpis.Rollup(offered=c.offered, answered=c.answered, answered_within_t=c.answered_within_t,
                            abandoned=c.abandoned, short_abandons=c.short_abandons,
                            sum_queue_s_answered=c.sum_wait_answered)
            out.append(WindowFigures(minutes, r.offered, r.answered, r.answered_within_t, r.abandoned,
                                     r.short_abandons, kpis.service_level(r), kpis.average_speed_of_answer(r),
                                     kpis.abandon_rate(r), c.provisional))
        return out

    def snapshot(self, scope: ScopeRef = CENTER) -> Snapshot | None:
        """None until the first event (no "now" yet)."""
        now = self.now
        if now is None:
            return None
        in_scope = [v for q, v in self._waiting.items() if _in_scope(q, scope)]
        calls_waiting = sum(count for count, _ in in_scope)
        longest = max((max(0.0, ((self._newest or now) - since).total_seconds()) for _, since in in_scope),
                      default=0.0)
        by_state: dict[str, int] = {}
        agents: list[AgentNow] = []
        for seen in self.agents:
            st = seen.status
            if scope.kind == "queue" and scope.id not in seen.queues:
                continue
            if scope.kind == "team" and st.team_id != scope.id:
                continue
            if scope.kind == "agent" and st.agent_id != scope.id:
                continue
            key = state_key(st.state, st.reason)
            by_state[key] = by_state.get(key, 0) + 1
            agents.append(AgentNow(st.agent_id, st.state, st.reason, st.time_in_state_s(now)))
        sl_threshold_s, sl_goal_pct = self._goals(scope)
        return Snapshot(scope, now, calls_waiting, longest, by_state, self.window_figures(scope), agents,
                        expected_wait_s=self._expected_wait(scope, now),
                        sl_threshold_s=sl_threshold_s, sl_goal_pct=sl_goal_pct, provisional_as_of=self._newest)

    def _expected_wait(self, scope: ScopeRef, now: datetime) -> float:
        """0 for a queue nobody waits in while one of its agents is ready (a caller would be answered at once),
        else the router's newest quote if still valid, else unknown (-1); the center: the largest of its queues'."""
        if scope.kind not in ("center", "queue"):
            return -1.0
        valid_from = now - timedelta(seconds=self.settings.quote_valid_s)
        out = -1.0
        for queue_id in (self.queues if scope.kind == "center" else {scope.id}):
            if self._waiting.get(queue_id, (0, now))[0] == 0 and queue_id in self._ready_in:
                wait = 0.0
            else:
                at, quoted = self._quotes.get(queue_id, (valid_from, -1.0))
                wait = quoted if at >= valid_from else -1.0
            out = max(out, wait)
        return out

    def _goals(self, scope: ScopeRef) -> tuple[float, float]:
        """The scope's SL threshold T and goal in force: a queue's or a team's own settings, else the defaults (a
        team without its own T measures each call against its queue's; the default T is shown)."""
        targets = self.settings.targets
        team = targets.teams.get(scope.id) if scope.kind == "team" else None
        if team is not None:
            own_t = team.sl_threshold_s
            return (targets.defaults.sl_threshold_s if own_t is None else own_t), team.sl_goal_pct
        queue = targets.of(scope.id) if scope.kind == "queue" else targets.defaults
        return queue.sl_threshold_s, queue.sl_goal_pct

    def snapshots(self) -> list[Snapshot]:
        """The center, every queue seen, and every team with settings or with an agent followed (its agents'
        states and its goals)."""
        teams = set(self.settings.targets.teams) | {a.status.team_id for a in self.agents if a.status.team_id}
        scopes = [CENTER, *(ScopeRef("queue", q) for q in sorted(self.queues)),
                  *(ScopeRef("team", t) for t in sorted(teams))]
        out = [self.snapshot(scope) for scope in scopes]
        return [s for s in out if s is not None]


def _decided_at(entry: tuple[datetime, Decided]) -> datetime:
    return entry[0]


_LEAVES = frozenset({"answered", "abandoned", "callback_requested", "overflowed", "ended"})


def _timestamp(at: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(at)
    return stamp


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _time(stamp: Timestamp) -> datetime:
    """Timestamp.ToDatetime, to the microsecond, at a tenth of its cost (a merge converts every held call's)."""
    return _EPOCH + timedelta(seconds=stamp.seconds, microseconds=stamp.nanos // 1000)


def _time_or_none(message: Message, name: str) -> datetime | None:
    return _time(getattr(message, name)) if message.HasField(name) else None


def _in_scope(queue_id: str, scope: ScopeRef) -> bool:
    return scope.kind == "center" or (scope.kind == "queue" and queue_id == scope.id)
