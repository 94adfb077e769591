"""Workforce planning for the coming week: offered calls and AHT per 30-minute interval and queue are read
from a history source (the KPI API), forecast with the seasonal model and its accuracy stated on held-out
weeks; optionally turned into agents per interval (Erlang C, or A with a patience) and a shift plan.

A week is 336 intervals from its start, a 30-minute boundary in UTC as the KPI API's buckets are (Monday
00:00 UTC, or a center's local Monday 00:00; a daylight-saving change shifts local hours by one for the
weeks on its other side). The shift plan covers
the sum of the queues' agents per interval: queues are staffed as if their agents were dedicated (a safe
upper bound when agents have several skills).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from callstream_hr.domain.erlang import StaffingResult, required_agents
from callstream_hr.domain.forecast import (
    HoldoutAccuracy,
    IntervalFigures,
    SeasonalForecaster,
    evaluate_holdout,
    history_from_intervals,
)
from callstream_hr.domain.shifts import ShiftPlan, ShiftTemplate, plan_shifts

INTERVAL = timedelta(minutes=30)
WEEK = timedelta(days=7)


class HistorySource(Protocol):
    def intervals(self, queue_id: str, start: datetime, end: datetime) -> list[IntervalFigures]:
        """Offered calls and AHT per 30-minute interval of one queue in [start, end); intervals without
        calls may be left out."""
        ...


class HistoryUnavailable(Exception):
    """The history source did not answer usably (unreachable, refused the token, malformed answer)."""


class BadHistory(ValueError):
    """The history cannot support a forecast (e.g. a week without any call: missing data)."""


@dataclass(frozen=True, slots=True)
class StaffingGoals:
    sl_target: float = 0.8
    t_s: float = 20.0
    max_occupancy: float = 1.0
    asa_goal: float | None = None
    abandon_goal: float | None = None
    patience_s: float | None = None
    shrinkage: float = 0.0

    def agents(self, calls: float, aht_s: float) -> StaffingResult:
        return required_agents(calls, INTERVAL.total_seconds(), aht_s, self.sl_target, self.t_s,
                               max_occupancy=self.max_occupancy, asa_goal=self.asa_goal,
                               abandon_goal=self.abandon_goal, patience_s=self.patience_s, shrinkage=self.shrinkage)


@dataclass(frozen=True, slots=True)
class ShiftOptions:
    templates: tuple[ShiftTemplate, ...]
    time_limit_s: float = 10.0
    understaffing_penalty_slots: int | None = None


@dataclass(frozen=True)
class QueueForecast:
    queue_id: str
    calls: list[float]  # one per interval of the week, Monday 00:00 UTC first
    aht_s: list[float]
    history_calls: float  # offered calls over the whole history read
    accuracy: HoldoutAccuracy
    staffing: list[StaffingResult] | None


@dataclass(frozen=True)
class WeekPlan:
    week_start: datetime
    history_start: datetime
    history_weeks: int
    queues: list[QueueForecast]
    requirement: list[int] | None  # Σ over queues of agents per interval (shrinkage included)
    shifts: ShiftPlan | None

    def interval_starts(self) -> list[datetime]:
        return [self.week_start + i * INTERVAL for i in range(int(WEEK / INTERVAL))]

    def as_dict(self) -> dict[str, Any]:
        """The JSON form (the HR API's answer and `callstream forecast --format json`)."""
        starts = [t.isoformat() for t in self.interval_starts()]
        queues = []
        for q in self.queues:
            intervals: list[dict[str, Any]] = [{"start": t, "calls": c, "aht_s": a}
                                               for t, c, a in zip(starts, q.calls, q.aht_s, strict=True)]
            for interval, r in zip(intervals, q.staffing or [], strict=False):
                interval.update(agents=r.agents, raw_agents=r.raw_agents, service_level=r.service_level,
                                asa_s=r.asa_s, occupancy=r.occupancy, abandon_rate=r.abandon_rate, model=r.model)
            queues.append({"queue_id": q.queue_id, "history_calls": q.history_calls,
                           "accuracy": asdict(q.accuracy), "intervals": intervals})
        return {"week_start": self.week_start.isoformat(), "history_start": self.history_start.isoformat(),
                "history_weeks": self.history_weeks, "interval_minutes": int(INTERVAL.total_seconds() // 60),
                "queues": queues, "requirement": self.requirement,
                "shift_plan": plan_dict(self.shifts) if self.shifts else None}


def plan_dict(plan: ShiftPlan) -> dict[str, Any]:
    """A shift plan's JSON form: headcount, paid hours against the LP bound, coverage and over/under per slot."""
    return {"status": plan.status, "covered": plan.covered, "headcount": plan.headcount,
            "paid_hours": plan.paid_hours, "lp_bound_hours": plan.lp_bound, "gap": plan.gap,
            "assignments": [{"template": a.template, "start_slot": a.start_slot, "count": a.count}
                            for a in plan.assignments],
            "coverage": list(plan.coverage), "over": list(plan.over), "under": list(plan.under)}


def check_week_start(week_start: datetime) -> None:
    """Any 30-minute boundary may start the week (the model only needs whole weeks): Monday 00:00 UTC, or
    Monday 00:00 of the center's zone given in UTC (Sunday 20:00 UTC for UTC+4), to match the KPI buckets."""
    if week_start.tzinfo is None:
        raise ValueError("the week start needs a timezone (e.g. 2026-11-30T00:00:00Z)")
    utc = week_start.astimezone(UTC)
    if utc.minute % 30 or utc.second or utc.microsecond:
        raise ValueError(f"the week must start on a 30-minute boundary (UTC), not {week_start.isoformat()}")


def forecast_week(
    source: HistorySource,
    queue_ids: Sequence[str],
    week_start: datetime,
    *,
    history_weeks: int,
    holdout_weeks: int = 1,
    forecaster: SeasonalForecaster | None = None,
    goals: StaffingGoals | None = None,
    shifts: ShiftOptions | None = None,
) -> WeekPlan:
    """The forecast of the week from ``week_start`` from the ``history_weeks`` weeks before it.

    The accuracy is measured by fitting on all but the last ``holdout_weeks`` history weeks and
    forecasting those; the forecast itself is fitted on every history week.
    """
    check_week_start(week_start)
    week_start = week_start.astimezone(UTC)
    if not queue_ids or len(set(queue_ids)) != len(queue_ids):
        raise ValueError("give one or more distinct queues")
    if not 1 <= holdout_weeks < history_weeks:
        raise ValueError("holdout_weeks must be >= 1 and leave at least one week to fit on")
    if shifts is not None and goals is None:
        raise ValueError("a shift plan needs staffing goals (agents per interval to cover)")
    model = forecaster if forecaster is not None else SeasonalForecaster()
    history_start = week_start - history_weeks * WEEK
    queues = []
    for queue_id in queue_ids:
        points = source.intervals(queue_id, history_start, week_start)
        try:
            history = history_from_intervals(points, history_start, history_weeks, INTERVAL)
        except ValueError as exc:
            raise HistoryUnavailable(f"queue {queue_id!r}: {exc}") from exc
        for week, total in enumerate(history.calls.sum(axis=1)):
            if total == 0:
                day = (history_start + week * WEEK).date().isoformat()
                raise BadHistory(f"queue {queue_id!r} has no offered call in the week from {day}: missing "
                                 "history? Ask for fewer history weeks, or check the queue id")
        fc = model.forecast(history, horizon_weeks=1)
        calls, aht = [float(v) for v in fc.flat_calls()], [float(v) for v in fc.flat_aht_s()]
        staffing = [goals.agents(c, a) for c, a in zip(calls, aht, strict=True)] if goals else None
        queues.append(QueueForecast(queue_id, calls, aht, float(history.calls.sum()),
                                    evaluate_holdout(history, holdout_weeks, model), staffing))
    requirement = None
    plan = None
    if goals is not None:
        requirement = [sum(q.staffing[i].agents for q in queues if q.staffing) for i in range(int(WEEK / INTERVAL))]
    if shifts is not None and requirement is not None:
        # A week of a 24/7 center wraps around: a Sunday-night shift covers Monday morning.
        plan = plan_shifts(requirement, shifts.templates, cyclic=True, slot_hours=INTERVAL.total_seconds() / 3600,
                           time_limit_s=shifts.time_limit_s,
                           understaffing_penalty_slots=shifts.understaffing_penalty_slots)
    return WeekPlan(week_start, history_start, history_weeks, queues, requirement, plan)
