"""Whether a week met its service targets, interval by interval, from the call records of that week (a
simulation of the plan, or the real week once it happened).

A queue's service level in an interval is the share of its calls *offered in that interval* that an agent
answered within the queue's threshold T, among those answered or abandoned (kpis.md; calls neither answered
nor abandoned when the records end are not counted). An interval without such calls has no service level
and is not judged.

An interval's figure is a sample: with n calls, a plan whose true service level sits exactly on the goal
shows a figure below it about half the time. So an interval is judged *short* only when its figure is below
the goal beyond sampling error: the one-sided 95 % Wilson upper bound of the observed proportion is below
the goal. ``met_plain`` keeps the bare comparison (figure ≥ goal) beside it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from callstream_hr.domain.history import CallOutcome, CallRecord

__all__ = ["IntervalService", "ServiceTarget", "WeekService", "service_by_interval", "wilson_upper"]

_Z_95_ONE_SIDED = 1.6448536269514722


@dataclass(frozen=True, slots=True)
class ServiceTarget:
    sl_goal: float  # e.g. 0.8
    t_s: float  # e.g. 20


@dataclass(frozen=True, slots=True)
class IntervalService:
    queue_id: str
    start: datetime
    offered: int
    answered: int
    abandoned: int
    answered_within_t: int
    service_level: float | None  # None: no answered or abandoned call in the interval
    met: bool | None  # not short beyond sampling error; None when not judged
    met_plain: bool | None  # service_level >= goal


@dataclass(frozen=True)
class WeekService:
    intervals: list[IntervalService]

    def judged(self, queue_id: str | None = None) -> list[IntervalService]:
        return [i for i in self.intervals if i.met is not None and (queue_id is None or i.queue_id == queue_id)]

    def share_met(self, queue_id: str | None = None, *, plain: bool = False) -> float:
        judged = self.judged(queue_id)
        if not judged:
            return 1.0
        return sum(bool(i.met_plain if plain else i.met) for i in judged) / len(judged)

    def service_level(self, queue_id: str | None = None) -> float | None:
        """The week's service level (all judged intervals' calls together)."""
        judged = self.judged(queue_id)
        base = sum(i.answered + i.abandoned for i in judged)
        return sum(i.answered_within_t for i in judged) / base if base else None


def wilson_upper(successes: int, n: int, z: float = _Z_95_ONE_SIDED) -> float:
    """Upper Wilson score bound of a binomial proportion."""
    if n == 0:
        return 1.0
    p = successes / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return min(1.0, (centre + spread) / (1 + z * z / n))


def service_by_interval(records: Iterable[CallRecord], targets: Mapping[str, ServiceTarget], week_start: datetime,
                        slots: int = 336, interval: timedelta = timedelta(minutes=30)) -> WeekService:
    """Per queue of ``targets`` and interval of the week from ``week_start``: calls, service level, met or not."""
    counts: dict[tuple[str, int], list[int]] = {}
    for r in records:
        if r.queue_id not in targets:
            continue
        index = (r.offered_at - week_start) // interval
        if not 0 <= index < slots:
            continue
        c = counts.setdefault((r.queue_id, index), [0, 0, 0, 0])
        c[0] += 1
        if r.outcome is CallOutcome.ANSWERED:
            c[1] += 1
            c[3] += r.wait_s <= targets[r.queue_id].t_s
        elif r.outcome is CallOutcome.ABANDONED:
            c[2] += 1
    out = []
    for queue_id, target in targets.items():
        for index in range(slots):
            offered, answered, abandoned, within = counts.get((queue_id, index), [0, 0, 0, 0])
            n = answered + abandoned
            sl = within / n if n else None
            out.append(IntervalService(
                queue_id, week_start + index * interval, offered, answered, abandoned, within, sl,
                None if sl is None else wilson_upper(within, n) >= target.sl_goal,
                None if sl is None else sl >= target.sl_goal))
    return WeekService(out)
