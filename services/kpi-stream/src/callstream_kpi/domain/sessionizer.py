"""Call events -> contact records, one segment per agent leg (kpis.md, "Vocabulary").

Stateful, around the pure fold (`fold.fold_call`, `fold.contacts_of`): a call's contacts are
recomputed from its whole event list, so duplicates, reordering and replays at any speed give the same rows.
A revision of an emitted contact (a late event) carries a higher `version`.

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
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from .contact import ContactRecord
from .fold import ENDING_KINDS, CallEvent, CallFold, contacts_of, event_kind, event_time, fold_call
from .targets import QueueTargets
from .watermark import EventClock, Watermark


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
        # Calls with events not folded yet, by when they can settle: at the watermark passing their newest event
        # (a heap of (that time, call id); entries made stale by later events are skipped), or at once when an
        # event may complete them and contacts are provisional. A sweep then costs the calls it settles, not
        # every call waiting for the watermark (in a replay whose partitions are read unevenly, every call of
        # the partitions ahead).
        self._due: list[tuple[datetime, str]] = []
        self._ready: set[str] = set()
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
        heapq.heappush(self._due, (call.last_at, call_id))
        if self.settings.provisional and (call.ending or call.closed):
            self._ready.add(call_id)
        return self._settle(call) if settle else []

    def sweep(self) -> list[ContactRecord]:
        """Emit settled calls, close timed-out ones, evict old ones: all against the watermark."""
        now = self.watermark.current
        if now is None:
            return []
        out: list[ContactRecord] = []
        for call_id in sorted(self._ready):  # sorted: the same order of contacts whatever the set's
            call = self._calls.get(call_id)
            if call is not None:
                out.extend(self._settle(call))
        self._ready.clear()
        while self._due and self._due[0][0] <= now:
            _, call_id = heapq.heappop(self._due)
            call = self._calls.get(call_id)
            if call is not None and call.dirty:
                out.extend(self._settle(call))
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
