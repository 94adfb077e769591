"""Call history per queue and 30-minute interval, from call records (a bank month, a queue_log, a simulation).

A :class:`CallRecord` is one offered call of one queue: when it was offered, how long it waited, whether an
agent answered it or the caller hung up, and its handle time (talk + hold + ACW, kpis.md) when answered.
:func:`aggregate_history` turns records into the interval figures the forecaster reads (offered calls and
AHT per interval, the AHT of an interval being that of the calls *offered* in it), and estimates each
queue's mean patience.

Patience (the Erlang A parameter 1/θ) is estimated as the maximum-likelihood estimate of an exponential
patience from censored waits (Brown et al., JASA 2005, §6): every queued caller contributes their time in
queue (the patience of answered callers is censored at their answer), every abandonment one event, so
``patience = Σ waits / abandonments``. A queue without any abandonment has no finite estimate (None:
Erlang C).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from callstream_hr.domain.forecast import IntervalFigures

__all__ = ["CallOutcome", "CallRecord", "QueueHistory", "RecordedHistory", "aggregate_history", "floor_to_interval"]


class CallOutcome(Enum):
    ANSWERED = "answered"
    ABANDONED = "abandoned"
    # Offered but neither answered nor abandoned in the record (blocked, overflowed away, still waiting
    # when the file ends): counted as offered, it contributes no handle time and no patience evidence.
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class CallRecord:
    queue_id: str
    offered_at: datetime
    outcome: CallOutcome
    wait_s: float  # time in queue before the answer or the hang-up (0 when answered at once)
    handle_s: float | None = None  # talk + hold + ACW of an answered call

    def __post_init__(self) -> None:
        if self.offered_at.tzinfo is None:
            raise ValueError(f"call of {self.queue_id!r}: offered_at needs a timezone")
        if self.wait_s < 0 or (self.handle_s is not None and self.handle_s < 0):
            raise ValueError(f"call of {self.queue_id!r} at {self.offered_at.isoformat()}: negative duration")
        if (self.outcome is CallOutcome.ANSWERED) != (self.handle_s is not None):
            raise ValueError(f"call of {self.queue_id!r} at {self.offered_at.isoformat()}: "
                             "a handle time is given exactly for answered calls")


@dataclass(frozen=True)
class QueueHistory:
    queue_id: str
    intervals: list[IntervalFigures]  # intervals with at least one offered call, in time order
    offered: int
    answered: int
    abandoned: int
    patience_s: float | None  # exponential MLE from censored waits; None without abandonments


def floor_to_interval(at: datetime, origin: datetime, interval: timedelta) -> datetime:
    """The start of the interval (aligned on ``origin``) that holds ``at``."""
    return origin + ((at - origin) // interval) * interval


def aggregate_history(
    records: Iterable[CallRecord], origin: datetime, interval: timedelta = timedelta(minutes=30)
) -> dict[str, QueueHistory]:
    """Per queue: offered calls and AHT per interval (intervals aligned on ``origin``), and the patience."""
    offered: dict[str, dict[datetime, int]] = defaultdict(lambda: defaultdict(int))
    handled: dict[str, dict[datetime, tuple[int, float]]] = defaultdict(dict)
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])  # answered, abandoned, Σ queue wait
    for r in records:
        start = floor_to_interval(r.offered_at, origin, interval)
        offered[r.queue_id][start] += 1
        t = totals[r.queue_id]
        if r.outcome is CallOutcome.ANSWERED:
            assert r.handle_s is not None
            n, s = handled[r.queue_id].get(start, (0, 0.0))
            handled[r.queue_id][start] = (n + 1, s + r.handle_s)
            t[0] += 1
            t[2] += r.wait_s
        elif r.outcome is CallOutcome.ABANDONED:
            t[1] += 1
            t[2] += r.wait_s
    out = {}
    for queue_id, per_interval in offered.items():
        answered, abandoned, wait = totals[queue_id][0], totals[queue_id][1], totals[queue_id][2]
        points = []
        for start in sorted(per_interval):
            n, s = handled[queue_id].get(start, (0, 0.0))
            points.append(IntervalFigures(start, float(per_interval[start]), s / n if n else None))
        out[queue_id] = QueueHistory(
            queue_id, points, sum(per_interval.values()), int(answered), int(abandoned),
            # Waits of 0 s (answered at once) are censored observations too: they add no time, no event.
            wait / abandoned if abandoned and wait > 0 else None,
        )
    return out


class RecordedHistory:
    """Interval figures per queue held in memory, as the planner's history source (``planning.HistorySource``)."""

    def __init__(self, intervals: dict[str, list[IntervalFigures]]) -> None:
        self._intervals = intervals

    @classmethod
    def of(cls, queues: dict[str, QueueHistory]) -> RecordedHistory:
        return cls({q: h.intervals for q, h in queues.items()})

    def intervals(self, queue_id: str, start: datetime, end: datetime) -> list[IntervalFigures]:
        """The queue's intervals in [start, end); none for a queue the records do not have."""
        return [p for p in self._intervals.get(queue_id, []) if start <= p.start < end]
