"""Event-time watermark, 30-minute interval bucketing and rolling windows.

"Now" of every rolling window is the watermark (largest event time seen minus the allowed
lateness; over several partitions, the smallest of the partitions' largest event times), never the
wall clock, so a replay at any speed yields the same figures.
"""

from __future__ import annotations

import bisect
from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar

INTERVAL = timedelta(minutes=30)
ROLLING_WINDOWS_MIN: tuple[int, ...] = (15, 30, 60)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

T = TypeVar("T")


def interval_start(ts: datetime, minutes: int = 30) -> datetime:
    """Start of the `minutes`-long bucket (aligned on the UTC epoch) that `ts` falls in."""
    if ts.tzinfo is None:
        raise ValueError("event times must be timezone-aware (UTC)")
    step = minutes * 60
    seconds = (ts - _EPOCH) // timedelta(microseconds=1) // 1_000_000
    return _EPOCH + timedelta(seconds=seconds - seconds % step)


def interval_end(ts: datetime, minutes: int = 30) -> datetime:
    return interval_start(ts, minutes) + timedelta(minutes=minutes)


def split_by_interval(start: datetime, end: datetime, minutes: int = 30) -> list[tuple[datetime, datetime]]:
    """[start, end) cut at bucket boundaries, so a duration lands in the interval it happened in."""
    parts: list[tuple[datetime, datetime]] = []
    cursor = start
    while cursor < end:
        boundary = interval_end(cursor, minutes)
        stop = min(boundary, end)
        parts.append((cursor, stop))
        cursor = stop
    return parts


class Watermark:
    """max(event time seen) - allowed lateness. Monotonic: never moves back."""

    def __init__(self, allowed_lateness_s: float = 10.0) -> None:
        if allowed_lateness_s < 0:
            raise ValueError("allowed_lateness_s must be >= 0")
        self.allowed_lateness = timedelta(seconds=allowed_lateness_s)
        self.max_event_time: datetime | None = None

    def observe(self, event_time: datetime) -> None:
        if self.max_event_time is None or event_time > self.max_event_time:
            self.max_event_time = event_time

    @property
    def current(self) -> datetime | None:
        """None until the first event: no figure can be "as of" anything yet."""
        if self.max_event_time is None:
            return None
        return self.max_event_time - self.allowed_lateness

    def is_late(self, event_time: datetime) -> bool:
        """True when the event is behind the watermark: it must not move already published real-time figures."""
        now = self.current
        return now is not None and event_time < now


class EventClock(Protocol):
    """What the domain objects read of a watermark (they observe events only when they own it)."""

    @property
    def current(self) -> datetime | None: ...

    def is_late(self, event_time: datetime) -> bool: ...


@dataclass(frozen=True)
class FixedClock:
    """An event clock set once: the real-time view merged from every partition's state is as of one moment."""

    current: datetime | None

    def is_late(self, event_time: datetime) -> bool:
        return self.current is not None and event_time < self.current


@dataclass
class _Partition:
    max_event_time: datetime
    last_seen_s: float  # processing time of the last event taken from it
    next_offset: int | None = None  # one past the last offset taken
    end_offset: int | None = None  # the log end offset last reported by the consumer (its "highwater")

    @property
    def caught_up(self) -> bool:
        """Known to have no record left to take (both offsets known)."""
        return self.end_offset is not None and self.next_offset is not None and self.end_offset <= self.next_offset

    @property
    def backlog(self) -> bool:
        """Records known to be in the log and not taken yet (unknown offsets: no known backlog)."""
        return self.end_offset is not None and self.next_offset is not None and self.end_offset > self.next_offset


class PartitionWatermark:
    """The watermark of a stream read from several partitions: the minimum over the partitions of each one's
    largest event time, minus the allowed lateness. Monotonic, and never ahead of the largest event time seen.

    Why the minimum: a consumer reads partitions at different speeds (a replay fetches one partition's
    backlog ahead of another's), so the largest event time of one partition says nothing about the calls
    still waiting in another; taking it as "now" times those calls out early.

    Idle partitions are left out, so one quiet partition cannot stall live figures: idle means no event
    taken from it for `idle_timeout_s` of processing time *and* no known backlog (the consumer's log end
    offset is not past the last offset taken). The backlog condition is what keeps a replay honest: a
    partition starved by the consumer (busy with another partition's backlog) sees no events for seconds,
    yet it is not idle while its log holds records not taken. When every partition is idle the watermark
    is the largest event time seen (nothing is waiting anywhere); so it is when the consumer is known to
    have taken every record of every partition (it has caught up: no event sits behind another partition's
    read-ahead, and live figures need not wait for the idle timeout), minus the allowed lateness less the
    processing time the stream has been quiet since: a stream that stops still closes its last calls.
    Partitions never seen hold no state that a watermark could time out, so they do not count until their first event.

    Offsets taken by an earlier process: a partition rebuilt from stored events after a restart is at the
    offset the consumer group committed (`note_taken(partition, committed - 1)`), not at the last stored
    event's: records past it (dead-lettered, or facts of other calls) were taken before the restart, and
    counting them as a backlog would hold the watermark back until that partition got a new record.

    Processing time is an input (`now_s`, monotonic seconds): the class does no I/O and reads no clock.
    `current` is the value computed by the last `advance`, so reading it is cheap.
    """

    def __init__(self, allowed_lateness_s: float = 10.0, idle_timeout_s: float = 5.0) -> None:
        if allowed_lateness_s < 0:
            raise ValueError("allowed_lateness_s must be >= 0")
        if idle_timeout_s <= 0:
            raise ValueError("idle_timeout_s must be > 0")
        self.allowed_lateness = timedelta(seconds=allowed_lateness_s)
        self.idle_timeout_s = idle_timeout_s
        self._partitions: dict[Hashable, _Partition] = {}
        self._current: datetime | None = None

    def observe(self, partition: Hashable, event_time: datetime, now_s: float, offset: int | None = None) -> None:
        """An event taken from `partition` (at `offset`, when known); call `advance` after a batch."""
        state = self._partitions.get(partition)
        if state is None:
            self._partitions[partition] = _Partition(event_time, now_s, None if offset is None else offset + 1)
            return
        if event_time > state.max_event_time:
            state.max_event_time = event_time
        state.last_seen_s = max(state.last_seen_s, now_s)
        if offset is not None and (state.next_offset is None or offset >= state.next_offset):
            state.next_offset = offset + 1

    def note_taken(self, partition: Hashable, offset: int) -> None:
        """A record taken from a seen partition that carried no event time (e.g. dead-lettered): it is not
        a backlog any more."""
        state = self._partitions.get(partition)
        if state is not None and (state.next_offset is None or offset >= state.next_offset):
            state.next_offset = offset + 1

    def note_end_offset(self, partition: Hashable, end_offset: int | None) -> None:
        """The consumer's log end offset of a partition (None: not known); only seen partitions are tracked."""
        state = self._partitions.get(partition)
        if state is not None and end_offset is not None:
            state.end_offset = end_offset

    def idle(self, partition: Hashable, now_s: float) -> bool:
        state = self._partitions[partition]
        return now_s - state.last_seen_s >= self.idle_timeout_s and not state.backlog

    def advance(self, now_s: float) -> datetime | None:
        """Recompute the watermark as of processing time `now_s`; returns it."""
        if not self._partitions:
            return None
        newest = max(p.max_event_time for p in self._partitions.values())
        if all(p.caught_up for p in self._partitions.values()):
            # Every record in the log is taken: none is behind. And the quiet since the last one counts: an
            # event that happened then would be in the log by now (live sources send within the lateness), so
            # the calls of the stream's last seconds close once it has been quiet for the allowed lateness,
            # instead of waiting for a next event that may never come. Capped at the newest event time seen;
            # an event that comes later still revises what it changes.
            quiet = timedelta(seconds=max(0.0, now_s - max(p.last_seen_s for p in self._partitions.values())))
            candidate = newest - max(timedelta(0), self.allowed_lateness - quiet)
        else:
            active = [p.max_event_time for key, p in self._partitions.items() if not self.idle(key, now_s)]
            candidate = min(active, default=newest) - self.allowed_lateness
        if self._current is None or candidate > self._current:
            self._current = candidate
        return self._current

    @property
    def current(self) -> datetime | None:
        """None until the first `advance` after an event: no figure can be "as of" anything yet."""
        return self._current

    def is_late(self, event_time: datetime) -> bool:
        now = self._current
        return now is not None and event_time < now

    @property
    def partitions(self) -> int:
        return len(self._partitions)

    def running_ahead(self, max_lead: timedelta) -> set[Hashable]:
        """Partitions whose newest event is more than `max_lead` ahead of the slowest partition that still has
        records to take (a known backlog); none when no partition has one (live, or caught up).

        Why: the watermark is the slowest partition's, so every call and agent point of a partition read ahead
        of it is held (open calls, buffered real-time events) until the slowest catches up. A consumer reading
        a long backlog unevenly (one partition's days ahead of another's: measured 100 h and more over a
        16-day replay) held state growing with the backlog, and the cost per event grew with it. A reader
        that pauses these partitions until the slowest catches up reads the backlog evenly in event time, so
        what is held is bounded by the lead, whatever the backlog's length. Only a partition with records
        left can catch up, so only those are the reference: a caught-up one is at the end of its log."""
        behind = [p.max_event_time for p in self._partitions.values() if p.backlog]
        if not behind:
            return set()
        limit = min(behind) + max_lead
        return {key for key, p in self._partitions.items() if p.max_event_time > limit}


@dataclass(order=True)
class _Entry(Generic[T]):
    at: datetime
    seq: int
    item: T = field(compare=False)


def _entry_at(entry: _Entry[Any]) -> datetime:
    return entry.at


def _entry_key(entry: _Entry[Any]) -> tuple[datetime, int]:
    return entry.at, entry.seq


class RollingWindow(Generic[T]):
    """Items stamped with an event time; `within(now, minutes)` returns those in (now - minutes, now], with their
    times.

    Items later than `now` (ahead of the watermark) are not counted yet. Items older than the longest
    window are pruned, so memory is bounded by the traffic of `horizon_min` minutes.
    """

    def __init__(self, horizon_min: int = max(ROLLING_WINDOWS_MIN)) -> None:
        self.horizon = timedelta(minutes=horizon_min)
        # Kept sorted by (time, arrival): items come out of order (calls are decided in any order within a
        # batch), so they are inserted by bisection; windows and pruning are cut by bisection too.
        self._items: list[_Entry[T]] = []
        self._seq = 0

    def add(self, at: datetime, item: T) -> None:
        self._seq += 1
        entry = _Entry(at, self._seq, item)
        if not self._items or self._items[-1].at <= at:
            self._items.append(entry)
        else:
            bisect.insort(self._items, entry, key=_entry_key)

    def add_many(self, items: Iterable[tuple[datetime, T]]) -> None:
        """Add many at once: one sort of what is held and the new items (a merge of sorted runs), where adding
        them one by one among the held ones would shift the list for each."""
        for at, item in items:
            self._seq += 1
            self._items.append(_Entry(at, self._seq, item))
        self._items.sort(key=_entry_key)

    def prune(self, now: datetime) -> None:
        del self._items[:bisect.bisect_right(self._items, now - self.horizon, key=_entry_at)]

    def within(self, now: datetime, minutes: int) -> Iterator[tuple[datetime, T]]:
        """(time, item) of the items in (now - minutes, now], oldest first."""
        lo = bisect.bisect_right(self._items, now - timedelta(minutes=minutes), key=_entry_at)
        hi = bisect.bisect_right(self._items, now, key=_entry_at)
        for entry in self._items[lo:hi]:
            yield entry.at, entry.item

    def entries(self) -> Iterator[tuple[datetime, T]]:
        """(time, item) of every item held, oldest first."""
        for entry in self._items:
            yield entry.at, entry.item

    def __len__(self) -> int:
        return len(self._items)
