"""Call events -> contact records, one segment per agent leg (kpis.md, "Vocabulary").

Pure and deterministic: the contacts of a call are recomputed from the call's whole event list,
sorted by (event time, kind order, event id), so duplicates, reordering and replays at any speed give
the same rows. A revision of an emitted contact (a late event) carries a higher `version`.

Lifecycle of a call, all against the event-time watermark (never the wall clock):

* open: events are collected; nothing is emitted until the call is complete.
* complete: the last leg reached its end (answered legs: the conversation ended; otherwise abandoned,
  blocked, IVR end, callback, overflow to a non-queue destination, transfer out of the ACD): every segment
  is emitted with version 1. No switch has to say when wrap-up ends: an answered leg's ACW is the wrap-up
  its `ended` event announced (`wrap_up_ms`, e.g. Asterisk's queue `wrapuptime`), and a `wrap_up_ended`
  that comes later (a webhook, an agent leaving wrap-up) revises the contact with what really happened.
* timed out: no end and the watermark passed last event + `session_timeout_s`: emitted with
  `timed_out` set on the unfinished legs (outcome `timed_out` when the call never reached an answer
  or abandon), never lost.
* closed calls stay in memory `grace_s` past their last event; a late event recomputes the call and
  re-emits only the segments that changed, with version + 1.
* evicted: only the call's event ids remain (a tombstone) for `dedup_retention_s` of watermark
  progress after the eviction (not after its last event: a stream can be far out of order), so a late
  duplicate is dropped; a late *new* event for an evicted complete call is dropped and counted
  (`stats.late_dropped`): it is still in the raw `call_events` table for a rebuild.
* parked: a call closed by time-out is not reduced to a tombstone but kept whole for
  `dedup_retention_s` after it was evicted: an event that arrives after all reopens it and revises its
  contacts (version + 1; `timed_out` cleared once the call is complete, kept while it is still
  unfinished), never dropped.

Memory bound: open calls live at most `session_timeout_s` of event time past their last event, closed
calls `grace_s`, tombstones (and parked timed-out calls) `dedup_retention_s` more; so memory ~ call rate
x (events per call) x (max call duration + session_timeout_s + grace_s + dedup_retention_s), tombstones
holding only ids.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from typing import TypeAlias

from callstream.call.v1 import call_events_pb2
from callstream.kpi.v1 import kpi_events_pb2
from callstream_core.envelope import deterministic_event_id, new_envelope

from .targets import QueueTargets
from .watermark import EventClock, Watermark

CallEvent: TypeAlias = call_events_pb2.CallEvent
Outcome = kpi_events_pb2.ContactOutcome

# Tie-break of events stamped with the same millisecond: the order they must happen in.
# `transferred`/`overflowed` come before queued/ringing/answered so a next leg that starts in the
# same millisecond as the transfer is attributed to the new leg.
KIND_ORDER: tuple[str, ...] = (
    "offered", "blocked", "ivr_entered", "ivr_left", "transferred", "overflowed", "queued",
    "callback_requested", "ringing", "ring_no_answer", "answered", "hold_started", "hold_ended",
    "abandoned", "ended", "wrap_up_ended",
)
KIND_RANK = {kind: rank for rank, kind in enumerate(KIND_ORDER)}
# The kinds that can end a leg, so complete a call: only these make a provisional fold worth its cost.
ENDING_KINDS = frozenset({"blocked", "ivr_left", "transferred", "overflowed", "callback_requested", "abandoned",
                          "ended", "wrap_up_ended"})

OUTCOME_NAMES: dict[kpi_events_pb2.ContactOutcome.ValueType, str] = {
    Outcome.CONTACT_OUTCOME_ANSWERED: "answered",
    Outcome.CONTACT_OUTCOME_ABANDONED: "abandoned",
    Outcome.CONTACT_OUTCOME_BLOCKED: "blocked",
    Outcome.CONTACT_OUTCOME_IVR_HANDLED: "ivr_handled",
    Outcome.CONTACT_OUTCOME_IVR_ABANDONED: "ivr_abandoned",
    Outcome.CONTACT_OUTCOME_OVERFLOWED: "overflowed",
    Outcome.CONTACT_OUTCOME_CALLBACK: "callback",
    Outcome.CONTACT_OUTCOME_TIMED_OUT: "timed_out",
}
OUTCOME_VALUES: dict[str, kpi_events_pb2.ContactOutcome.ValueType] = {
    name: value for value, name in OUTCOME_NAMES.items()
}
# Outcomes of calls that never reached the ACD (kpis.md: blocked and IVR-ended calls are not offered).
_TERMINAL_UNANSWERED = frozenset({"blocked", "ivr_handled", "ivr_abandoned", "abandoned", "overflowed", "callback"})


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def event_time(event: CallEvent) -> datetime:
    # Same value as Timestamp.ToDatetime(tzinfo=UTC), several times faster: this runs for every sort key.
    stamp = event.envelope.occurred_at
    return _EPOCH + timedelta(seconds=stamp.seconds, microseconds=stamp.nanos // 1000)


def event_kind(event: CallEvent) -> str:
    return event.WhichOneof("kind") or ""


def sort_key(event: CallEvent) -> tuple[datetime, int, str]:
    return event_time(event), KIND_RANK.get(event_kind(event), len(KIND_ORDER)), event.envelope.event_id


@dataclass(frozen=True)
class ContactRecord:
    """One contact segment; field for field the `kpi.v1.Contact` message (times as aware datetimes)."""

    call_id: str
    segment: int
    outcome: str
    offered_at: datetime
    queue_id: str = ""
    agent_id: str = ""
    team_id: str = ""
    call_type: str = ""
    caller_hash: str = ""
    priority: int = 0
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    ivr_s: float = 0.0
    queue_s: float = 0.0
    ring_s: float = 0.0
    talk_s: float = 0.0
    hold_s: float = 0.0
    acw_s: float = 0.0
    hold_count: int = 0
    queued: bool = False
    short_abandon: bool = False
    transfer_kind: str = ""
    disposition_code: str = ""
    resolved: bool = False
    hard_call: bool = False
    topic: str = ""
    version: int = 1
    timed_out: bool = False

    @property
    def answered(self) -> bool:
        return self.answered_at is not None

    @property
    def handle_s(self) -> float:
        return self.talk_s + self.hold_s + self.acw_s

    def same_content(self, other: ContactRecord) -> bool:
        return replace(self, version=0) == replace(other, version=0)

    def to_proto(self, source: str = "kpi-stream") -> kpi_events_pb2.Contact:
        occurred = self.ended_at or self.answered_at or self.offered_at
        env = new_envelope(
            source, occurred, deterministic_event_id("contact", self.call_id, str(self.segment), str(self.version))
        )
        msg = kpi_events_pb2.Contact(envelope=env)
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "outcome":
                msg.outcome = OUTCOME_VALUES[value]
            elif isinstance(value, datetime):
                getattr(msg, f.name).FromDatetime(value)
            elif value is not None:
                setattr(msg, f.name, value)
        return msg

    @classmethod
    def from_proto(cls, msg: kpi_events_pb2.Contact) -> ContactRecord:
        def opt(name: str) -> datetime | None:
            return getattr(msg, name).ToDatetime(tzinfo=UTC) if msg.HasField(name) else None

        kwargs: dict[str, object] = {}
        for f in fields(cls):
            if f.name == "outcome":
                kwargs[f.name] = OUTCOME_NAMES.get(msg.outcome, "timed_out")
            elif f.name == "offered_at":
                kwargs[f.name] = msg.offered_at.ToDatetime(tzinfo=UTC)
            elif f.name in ("answered_at", "ended_at"):
                kwargs[f.name] = opt(f.name)
            else:
                kwargs[f.name] = getattr(msg, f.name)
        return cls(**kwargs)  # type: ignore[arg-type]


@dataclass(frozen=True)
class SessionizerSettings:
    session_timeout_s: float = 4 * 3600.0
    allowed_lateness_s: float = 10.0
    # Closed calls kept (event time) for late events that revise them.
    grace_s: float = 15 * 60.0
    # Event ids of evicted calls kept this much longer to drop late duplicates.
    dedup_retention_s: float = 24 * 3600.0
    # Each queue's short-abandon threshold (the worker refreshes them from the queue settings).
    targets: QueueTargets = field(default_factory=QueueTargets)
    # Emit a call's contacts as soon as an event completes it, instead of once the watermark passes its
    # last event: what the KPI API reads is then fresh within a batch, not the allowed lateness later
    # (issue 19). An event reordered within the lateness then revises the contact (version + 1) instead of
    # being folded in before the first emission; the rows in force are the same either way.
    provisional: bool = False


# ----------------------------------------------------------------------------------------------
# Pure fold: sorted events of one call -> legs


@dataclass
class _Leg:
    segment: int
    started_at: datetime
    queue_id: str = ""
    agent_id: str = ""
    acd_entry: datetime | None = None
    queued_at: datetime | None = None
    ring_at: datetime | None = None
    ring_agent: str = ""
    ring_s: float = 0.0
    answered_at: datetime | None = None
    conv_end: datetime | None = None
    hold_open: datetime | None = None
    hold_s: float = 0.0
    hold_count: int = 0
    wrap_at: datetime | None = None
    # The wrap-up the switch announced when the conversation ended: the ACW until a wrap_up_ended says more.
    announced_wrap_s: float = 0.0
    disposition: str = ""
    resolved: bool = False
    hard_call: bool = False
    topic: str = ""
    transfer_kind: str = ""
    outcome: str | None = None
    ended_at: datetime | None = None

    def close_conversation(self, at: datetime) -> None:
        if self.hold_open is not None:
            self.hold_s += max(0.0, (at - self.hold_open).total_seconds())
            self.hold_open = None
        self.conv_end = at

    @property
    def complete(self) -> bool:
        if self.outcome == "answered":
            return self.conv_end is not None
        return self.outcome in _TERMINAL_UNANSWERED


@dataclass
class CallFold:
    """The result of folding a call's sorted events."""

    legs: list[_Leg]
    first_at: datetime
    last_at: datetime
    offered_at: datetime | None = None
    queue_id: str = ""
    call_type: str = ""
    caller_hash: str = ""
    priority: int = 0
    ivr_s: float = 0.0
    ivr_open: datetime | None = None

    @property
    def complete(self) -> bool:
        """Complete when every leg reached its end (a leg's wrap-up does not hold the call back: its ACW is the
        announced one, and a later wrap_up_ended revises the contact)."""
        return all(leg.complete for leg in self.legs)


def _fill_context(fold: CallFold, ctx: call_events_pb2.CallContext) -> None:
    fold.queue_id = fold.queue_id or ctx.queue_id
    fold.call_type = fold.call_type or ctx.call_type
    fold.caller_hash = fold.caller_hash or ctx.caller_hash
    fold.priority = fold.priority or ctx.priority


def fold_call(events: Iterable[CallEvent]) -> CallFold:  # noqa: C901 (the fold, to split along its seams (issue 15))
    """Fold the events of one call (any order, no duplicates) into its legs."""
    ordered = sorted(events, key=sort_key)
    if not ordered:
        raise ValueError("a call needs at least one event")
    first = event_time(ordered[0])
    fold = CallFold(legs=[_Leg(segment=0, started_at=first)], first_at=first, last_at=event_time(ordered[-1]))

    def leg_of(agent_id: str) -> _Leg:
        if agent_id:
            for leg in reversed(fold.legs):
                if leg.agent_id == agent_id and leg.answered_at is not None:
                    return leg
        return fold.legs[-1]

    # agent -> when they answered a consult call (warm transfer) during the current leg
    consults: dict[str, datetime] = {}

    def new_leg(at: datetime, queue_id: str, agent_id: str = "") -> None:
        leg = _Leg(segment=len(fold.legs), started_at=at, queue_id=queue_id, agent_id=agent_id, acd_entry=at)
        if agent_id and agent_id in consults:
            # the target already took the consult call: their leg with the caller starts at the transfer
            leg.answered_at, leg.outcome = at, "answered"
        consults.clear()
        fold.legs.append(leg)

    for ev in ordered:
        t = event_time(ev)
        kind = event_kind(ev)
        cur = fold.legs[-1]
        open_unanswered = cur.answered_at is None and cur.outcome is None
        if kind == "offered":
            _fill_context(fold, ev.offered.context)
            fold.offered_at = fold.offered_at or t
            cur.acd_entry = cur.acd_entry or t
            cur.queue_id = cur.queue_id or ev.offered.context.queue_id
        elif kind == "blocked":
            _fill_context(fold, ev.blocked.context)
            if open_unanswered:
                cur.queue_id = cur.queue_id or ev.blocked.context.queue_id
                cur.outcome, cur.ended_at = "blocked", t
        elif kind == "ivr_entered":
            _fill_context(fold, ev.ivr_entered.context)
            fold.ivr_open = fold.ivr_open or t
        elif kind == "ivr_left":
            if fold.ivr_open is not None:
                fold.ivr_s += max(0.0, (t - fold.ivr_open).total_seconds())
                fold.ivr_open = None
            outcome = ev.ivr_left.outcome
            if outcome == call_events_pb2.IvrLeft.OUTCOME_TO_AGENT:
                if cur.acd_entry is None or cur.acd_entry < t:
                    cur.acd_entry = t
            elif open_unanswered and cur.queued_at is None:
                self_service = outcome == call_events_pb2.IvrLeft.OUTCOME_SELF_SERVICE
                cur.outcome, cur.ended_at = ("ivr_handled" if self_service else "ivr_abandoned"), t
        elif kind == "queued":
            if open_unanswered:
                cur.queued_at = cur.queued_at or t
                cur.queue_id = ev.queued.queue_id or cur.queue_id
                cur.acd_entry = cur.acd_entry or t
        elif kind == "ringing":
            if open_unanswered:
                cur.ring_at, cur.ring_agent = t, ev.ringing.agent_id
                cur.queue_id = cur.queue_id or ev.ringing.queue_id
                cur.acd_entry = cur.acd_entry or t
        elif kind == "ring_no_answer":
            if open_unanswered and cur.ring_agent == ev.ring_no_answer.agent_id:
                cur.ring_at, cur.ring_agent = None, ""
        elif kind == "answered":
            if open_unanswered:
                agent = ev.answered.agent_id or cur.agent_id
                cur.answered_at, cur.agent_id, cur.outcome = t, agent, "answered"
                cur.queue_id = cur.queue_id or ev.answered.queue_id
                cur.acd_entry = cur.acd_entry or t
                if cur.ring_at is not None and cur.ring_agent in ("", agent):
                    cur.ring_s = max(0.0, (t - cur.ring_at).total_seconds())
            elif cur.answered_at is not None and ev.answered.agent_id and ev.answered.agent_id != cur.agent_id:
                # another agent picked up while this leg is live: the consult call of a warm transfer
                consults[ev.answered.agent_id] = t
        elif kind == "hold_started":
            leg = leg_of(ev.hold_started.agent_id)
            if leg.answered_at is not None and leg.conv_end is None and leg.hold_open is None:
                leg.hold_open = t
                leg.hold_count += 1
        elif kind == "hold_ended":
            leg = leg_of(ev.hold_ended.agent_id)
            if leg.hold_open is not None:
                leg.hold_s += max(0.0, (t - leg.hold_open).total_seconds())
                leg.hold_open = None
        elif kind == "transferred":
            tr = ev.transferred
            leg = leg_of(tr.from_agent_id)
            target = tr.WhichOneof("target")
            to_queue = tr.to_queue_id if target == "to_queue_id" else ""
            to_agent = tr.to_agent_id if target == "to_agent_id" else ""
            if leg is cur and cur.answered_at is not None and cur.conv_end is None:
                cur.close_conversation(t)
                cur.ended_at = t
                cur.transfer_kind = {call_events_pb2.CallTransferred.KIND_BLIND: "blind",
                                     call_events_pb2.CallTransferred.KIND_WARM: "warm"}.get(tr.kind, "blind")
                if target != "to_external":  # out of the ACD: no further leg to wait for
                    new_leg(t, to_queue or cur.queue_id, to_agent)
            elif open_unanswered and to_queue:
                cur.queue_id = to_queue  # moved before anyone answered: same leg, new queue
        elif kind == "overflowed":
            ov = ev.overflowed
            if open_unanswered:
                cur.queue_id = cur.queue_id or ov.from_queue_id
                cur.ended_at = t
                if ov.destination == call_events_pb2.CallOverflowed.DESTINATION_CALLBACK:
                    cur.outcome = "callback"
                else:
                    cur.outcome = "overflowed"
                    if ov.destination == call_events_pb2.CallOverflowed.DESTINATION_QUEUE and ov.to_queue_id:
                        new_leg(t, ov.to_queue_id)
        elif kind == "callback_requested":
            if open_unanswered:
                cur.queue_id = cur.queue_id or ev.callback_requested.queue_id
                cur.outcome, cur.ended_at = "callback", t
        elif kind == "abandoned":
            if open_unanswered:
                cur.queue_id = cur.queue_id or ev.abandoned.queue_id
                cur.outcome, cur.ended_at = "abandoned", t
        elif kind == "ended":
            ender = leg_of(ev.ended.agent_id) if ev.ended.agent_id else cur
            if ender.answered_at is not None and ev.ended.wrap_up_ms:
                # also for a leg a transfer closed: the agent's channel ends after it and announces the wrap-up
                ender.announced_wrap_s = ev.ended.wrap_up_ms / 1000.0
            if ender is not cur and ender.conv_end is not None:
                continue  # an earlier agent's channel closing after a transfer: not the end of the call
            if fold.ivr_open is not None:
                fold.ivr_s += max(0.0, (t - fold.ivr_open).total_seconds())
                fold.ivr_open = None
            if cur.answered_at is not None and cur.conv_end is None:
                cur.close_conversation(t)
                cur.ended_at = t
            elif open_unanswered:
                reached_acd = cur.acd_entry is not None or fold.offered_at is not None or cur.segment > 0
                cur.outcome, cur.ended_at = ("abandoned" if reached_acd else "ivr_abandoned"), t
        elif kind == "wrap_up_ended":
            wu = ev.wrap_up_ended
            leg = leg_of(wu.agent_id)
            if leg.answered_at is not None and leg.wrap_at is None:
                leg.wrap_at = t
                leg.disposition, leg.resolved, leg.hard_call, leg.topic = (
                    wu.disposition_code, wu.resolved, wu.hard_call, wu.topic)
    return fold


def contacts_of(call_id: str, fold: CallFold, settings: SessionizerSettings, *, timed_out: bool = False,
                team_of: Callable[[str], str] | None = None) -> list[ContactRecord]:
    """The contact segments of a folded call. `timed_out`: the session timed out, flag unfinished legs."""
    records: list[ContactRecord] = []
    for leg in fold.legs:
        outcome = leg.outcome
        leg_timed_out = timed_out and not leg.complete
        if outcome is None:
            outcome = "timed_out"
        # Where the leg stops counting queue time: answer, abandon/overflow/callback, or (timed out) last event.
        left_queue = leg.answered_at or leg.ended_at or fold.last_at
        queue_s = max(0.0, (left_queue - leg.queued_at).total_seconds()) if leg.queued_at is not None else 0.0
        conv_end = leg.conv_end
        talk_s = hold_s = acw_s = 0.0
        if leg.answered_at is not None:
            end = conv_end or fold.last_at
            hold_s = leg.hold_s
            if leg.hold_open is not None:  # hold never ended: it lasted to the end of the conversation
                hold_s += max(0.0, (end - leg.hold_open).total_seconds())
            talk_s = max(0.0, (end - leg.answered_at).total_seconds() - hold_s)
            if conv_end is not None and leg.wrap_at is not None and leg.wrap_at >= conv_end:
                acw_s = (leg.wrap_at - conv_end).total_seconds()
            elif conv_end is not None:
                acw_s = leg.announced_wrap_s
        short = False
        if outcome == "abandoned":
            waited_from = leg.queued_at or leg.acd_entry or leg.started_at
            assert leg.ended_at is not None
            wait_s = max(0.0, (leg.ended_at - waited_from).total_seconds())
            short = wait_s <= settings.targets.short_abandon_s(leg.queue_id or fold.queue_id)
        queue_id = leg.queue_id or fold.queue_id
        offered_at = (fold.offered_at or fold.first_at) if leg.segment == 0 else leg.started_at
        records.append(ContactRecord(
            call_id=call_id,
            segment=leg.segment,
            outcome=outcome,
            offered_at=offered_at,
            queue_id=queue_id,
            agent_id=leg.agent_id,
            team_id=team_of(leg.agent_id) if (team_of is not None and leg.agent_id) else "",
            call_type=fold.call_type,
            caller_hash=fold.caller_hash,
            priority=fold.priority,
            answered_at=leg.answered_at,
            ended_at=leg.ended_at or (fold.last_at if leg_timed_out else None),
            ivr_s=fold.ivr_s if leg.segment == 0 else 0.0,
            queue_s=queue_s,
            ring_s=leg.ring_s,
            talk_s=talk_s,
            hold_s=hold_s,
            acw_s=acw_s,
            hold_count=leg.hold_count,
            queued=leg.queued_at is not None,
            short_abandon=short,
            transfer_kind=leg.transfer_kind,
            disposition_code=leg.disposition,
            resolved=leg.resolved,
            hard_call=leg.hard_call,
            topic=leg.topic or fold.call_type,
            timed_out=leg_timed_out,
        ))
    return records


# ----------------------------------------------------------------------------------------------
# Stateful sessionizer


@dataclass
class _Call:
    call_id: str
    events: list[CallEvent] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)
    last_at: datetime | None = None
    dirty: bool = False  # events arrived since the last fold
    ending: bool = False  # one of them can complete the call (`ENDING_KINDS`)
    closed: bool = False  # emitted at least once (complete or timed out)
    timed_out: bool = False
    emitted: dict[int, ContactRecord] = field(default_factory=dict)


@dataclass
class SessionizerStats:
    events: int = 0
    duplicates: int = 0
    late_dropped: int = 0
    emitted: int = 0
    revisions: int = 0
    timed_out: int = 0
    revived: int = 0  # late events that reopened a call parked after its time-out
    restored: int = 0  # stored events taken back to rebuild a call no longer held (`restore`)


class Sessionizer:
    """Stateful wrapper of `fold_call`: call `process` per event (or `process_batch`) and `sweep` per batch.

    A complete call is emitted once the watermark reaches its last event (so events reordered within the
    allowed lateness do not cause revisions); with `allowed_lateness_s=0` that is at once. With
    `provisional` it is emitted as soon as an event completes it, and late events revise it.

    The watermark is the sessionizer's own (largest event time it saw) unless one is given: then its owner
    observes the events (e.g. per Kafka partition, `PartitionWatermark`) and the sessionizer only reads it.

    A sweep costs what changed, not what is held: calls with new events are kept in a set, time-outs,
    evictions and forgetting in heaps by deadline (entries made stale by later events are skipped).
    """

    def __init__(self, settings: SessionizerSettings | None = None,
                 team_of: Callable[[str], str] | None = None, watermark: EventClock | None = None) -> None:
        self.settings = settings or SessionizerSettings()
        self._own_watermark: Watermark | None = None
        if watermark is None:
            watermark = self._own_watermark = Watermark(self.settings.allowed_lateness_s)
        self.watermark: EventClock = watermark
        self.team_of = team_of
        self.stats = SessionizerStats()
        self._timeout = timedelta(seconds=self.settings.session_timeout_s)
        self._grace = timedelta(seconds=self.settings.grace_s)
        self._retention = timedelta(seconds=self.settings.dedup_retention_s)
        self._calls: dict[str, _Call] = {}
        self._dirty: set[str] = set()
        # call_id -> (event ids, forgotten once the watermark reaches this)
        self._tombstones: dict[str, tuple[frozenset[str], datetime]] = {}
        # Calls closed by time-out and past their grace: kept whole (events and emitted segments) until
        # forgotten, so an event that arrives after all revises the contact instead of being dropped. They
        # are rare (a call whose end was lost, or one cut in two by a stream out of order by more than the
        # time-out). call_id -> (call, forgotten once the watermark passes this)
        self._parked: dict[str, tuple[_Call, datetime]] = {}
        # (deadline, last event time the deadline was computed from, call id)
        self._timeouts: list[tuple[datetime, datetime, str]] = []
        self._evictions: list[tuple[datetime, datetime, str]] = []
        self._forget: list[tuple[datetime, str]] = []

    @property
    def open_calls(self) -> int:
        return sum(1 for c in self._calls.values() if not c.closed)

    def open_call_ids(self) -> list[str]:
        """The calls still waiting for their end (what an operator or a test looks at when `open_calls` stays up)."""
        return sorted(call_id for call_id, c in self._calls.items() if not c.closed)

    @property
    def held_calls(self) -> int:
        return len(self._calls)

    @property
    def tombstones(self) -> int:
        return len(self._tombstones)

    @property
    def parked_calls(self) -> int:
        return len(self._parked)

    def process(self, event: CallEvent, *, settle: bool = True) -> list[ContactRecord]:
        """Take one event; returns the contacts (new or revised) it settles, possibly none.

        `settle=False` only records the event (a batch settles once, in `sweep`, so one batch yields one
        revision per call at most)."""
        self.stats.events += 1
        return self._take(event, settle)

    def needs_history(self, event: CallEvent) -> bool:
        """True when `event` may belong to a call no longer held whole: a new event of a call reduced to a
        tombstone, or an event of an unknown call older than the watermark minus the session time-out (the
        rest of that call may have been timed out and forgotten). The caller then `restore`s the call's
        stored events first, so the late event revises the call instead of being dropped or starting a
        call of its own."""
        call_id = event.call_id
        if call_id in self._calls or call_id in self._parked:
            return False
        tomb = self._tombstones.get(call_id)
        if tomb is not None:
            return event.envelope.event_id not in tomb[0]
        now = self.watermark.current
        return now is not None and event_time(event) + self._timeout < now

    def restore(self, events: Iterable[CallEvent]) -> None:
        """Take back stored events (the raw `call_events` table) of calls no longer held, before their late
        events: each call is rebuilt whole and settled by the next sweep (its contacts re-emitted as
        revisions). Not counted as new events."""
        for event in events:
            self._tombstones.pop(event.call_id, None)
            self.stats.restored += 1
            self._take(event, False)

    def _take(self, event: CallEvent, settle: bool) -> list[ContactRecord]:
        call_id, event_id = event.call_id, event.envelope.event_id
        tomb = self._tombstones.get(call_id)
        if tomb is not None:
            if event_id in tomb[0]:
                self.stats.duplicates += 1
            else:
                self.stats.late_dropped += 1
            return []
        call = self._calls.get(call_id)
        if call is None:
            parked = self._parked.get(call_id)
            if parked is not None:
                if event_id in parked[0].ids:  # a late duplicate: the call stays parked
                    self.stats.duplicates += 1
                    return []
                del self._parked[call_id]
                call = self._calls[call_id] = parked[0]
                self.stats.revived += 1
            else:
                call = self._calls[call_id] = _Call(call_id)
        if event_id and event_id in call.ids:
            self.stats.duplicates += 1
            return []
        if event_id:
            call.ids.add(event_id)
        at = event_time(event)
        if self._own_watermark is not None:
            self._own_watermark.observe(at)
        call.events.append(event)
        call.last_at = at if call.last_at is None else max(call.last_at, at)
        call.dirty = True
        call.ending = call.ending or event_kind(event) in ENDING_KINDS
        self._dirty.add(call_id)
        return self._settle(call) if settle else []

    def sweep(self) -> list[ContactRecord]:
        """Emit settled calls, close timed-out ones, evict old ones: all against the watermark."""
        now = self.watermark.current
        if now is None:
            return []
        out: list[ContactRecord] = []
        for call_id in list(self._dirty):
            out.extend(self._settle(self._calls[call_id]))
        while self._timeouts and self._timeouts[0][0] < now:
            _, last_at, call_id = heapq.heappop(self._timeouts)
            call = self._calls.get(call_id)
            if call is None or call.closed or call.dirty or call.last_at != last_at:
                continue  # stale: closed since, or later events moved its deadline
            call.timed_out = True
            self.stats.timed_out += 1
            out.extend(self._emit(call, fold_call(call.events)))
            self._schedule(call)
        while self._evictions and self._evictions[0][0] < now:
            _, last_at, call_id = heapq.heappop(self._evictions)
            call = self._calls.get(call_id)
            if call is None or not call.closed or call.dirty or call.last_at != last_at:
                continue
            del self._calls[call_id]
            # Kept for the retention counted from the eviction, not from the call's last event: when the
            # stream is out of order by more than that (a file replayed in its own order, read ahead), the
            # rest of the call can still come although the watermark is already far past it.
            until = max(last_at + self._grace, now) + self._retention
            if call.timed_out:
                self._parked[call_id] = (call, until)
            else:
                self._tombstones[call_id] = (frozenset(call.ids), until)
            heapq.heappush(self._forget, (until, call_id))
        while self._forget and self._forget[0][0] <= now:
            until, call_id = heapq.heappop(self._forget)
            tomb = self._tombstones.get(call_id)
            if tomb is not None and tomb[1] == until:
                del self._tombstones[call_id]
            parked = self._parked.get(call_id)
            if parked is not None and parked[1] == until:
                del self._parked[call_id]
        return out

    def process_batch(self, events: Iterable[CallEvent]) -> list[ContactRecord]:
        out: list[ContactRecord] = []
        for event in events:
            out.extend(self.process(event, settle=False))
        out.extend(self.sweep())
        return out

    def continue_versions(self, stored: dict[tuple[str, int], int]) -> None:
        """The versions a store holds of contacts of calls held here (after a rebuild, which numbers them
        from 1): the emitted contacts take them on, so the next revision outranks what is stored."""
        for (call_id, segment), version in stored.items():
            call = self._calls.get(call_id)
            emitted = call.emitted.get(segment) if call is not None else None
            if call is not None and emitted is not None and emitted.version < version:
                call.emitted[segment] = replace(emitted, version=version)

    def _schedule(self, call: _Call) -> None:
        """The call's next deadline: its time-out while open, its eviction once closed."""
        assert call.last_at is not None
        if call.closed:
            heapq.heappush(self._evictions, (call.last_at + self._grace, call.last_at, call.call_id))
        else:
            heapq.heappush(self._timeouts, (call.last_at + self._timeout, call.last_at, call.call_id))

    def _settle(self, call: _Call) -> list[ContactRecord]:
        now = self.watermark.current
        if not call.dirty or call.last_at is None:
            return []
        if (now is None or now < call.last_at) and not (self.settings.provisional and (call.ending or call.closed)):
            return []
        fold = fold_call(call.events)
        call.dirty = call.ending = False
        self._dirty.discard(call.call_id)
        out: list[ContactRecord] = []
        if fold.complete:
            call.timed_out = False
            out = self._emit(call, fold)
        elif call.closed:  # timed out earlier and still unfinished: a late event revises it, still flagged
            out = self._emit(call, fold)
        self._schedule(call)
        return out

    def _emit(self, call: _Call, fold: CallFold) -> list[ContactRecord]:
        call.closed, call.dirty = True, False
        self._dirty.discard(call.call_id)
        records = contacts_of(call.call_id, fold, self.settings, timed_out=call.timed_out, team_of=self.team_of)
        out: list[ContactRecord] = []
        for rec in records:
            prev = call.emitted.get(rec.segment)
            if prev is not None and prev.same_content(rec):
                continue
            rec = replace(rec, version=1 if prev is None else prev.version + 1)
            if prev is not None:
                self.stats.revisions += 1
            call.emitted[rec.segment] = rec
            out.append(rec)
        self.stats.emitted += len(out)
        return out
