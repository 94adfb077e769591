"""Event-time watermark, 30-minute interval bucketing and rolling windows.

"Now" of every rolling window is the watermark (largest event time seen minus the allowed
lateness), never the wall clock, so a replay at any speed yields the same figures.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Generic, TypeVar

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


@dataclass(order=True)
class _Entry(Generic[T]):
    at: datetime
    seq: int
    item: T = field(compare=False)


class RollingWindow(Generic[T]):
    """Items stamped with an event time; `within(now, minutes)` returns those in (now - minutes, now].

    Items later than `now` (ahead of the watermark) are not counted yet. Items older than the longest
    window are pruned, so memory is bounded by the traffic of `horizon_min` minutes.
    """

    def __init__(self, horizon_min: int = max(ROLLING_WINDOWS_MIN)) -> None:
        self.horizon = timedelta(minutes=horizon_min)
        self._items: deque[_Entry[T]] = deque()
        self._seq = 0

    def add(self, at: datetime, item: T) -> None:
        self._seq += 1
        entry = _Entry(at, self._seq, item)
        if not self._items or self._items[-1] <= entry:
            self._items.append(entry)
            return
        # Out of order: insert keeping time order (rare; deque small).
        items = list(self._items)
        lo, hi = 0, len(items)
        while lo < hi:
            mid = (lo + hi) // 2
            if items[mid] <= entry:
                lo = mid + 1
            else:
                hi = mid
        items.insert(lo, entry)
        self._items = deque(items)

    def prune(self, now: datetime) -> None:
        limit = now - self.horizon
        while self._items and self._items[0].at <= limit:
            self._items.popleft()

    def within(self, now: datetime, minutes: int) -> Iterator[T]:
        start = now - timedelta(minutes=minutes)
        for entry in self._items:
            if start < entry.at <= now:
                yield entry.item

    def __len__(self) -> int:
        return len(self._items)
