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
from dataclasses import asdict, dataclass, field
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
from callstream_hr.domain.roster import Employee, QueueShifts, Roster, RosterRules, build_roster
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
        if aht_s == 0:  # the interval's calls took no handling time (history of 0-second services): no load
            return StaffingResult(0, 0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, "erlang_c" if self.patience_s is None
                                  else "erlang_a")
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


def _forecast_queue(source: HistorySource, queue_id: str, history_start: datetime, history_weeks: int,
                    holdout_weeks: int, model: SeasonalForecaster, goals: StaffingGoals | None) -> QueueForecast:
    """One queue's forecast of the week after its history, its hold-out accuracy and, with goals, its agents."""
    points = source.intervals(queue_id, history_start, history_start + history_weeks * WEEK)
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
    return QueueForecast(queue_id, calls, aht, float(history.calls.sum()),
                         evaluate_holdout(history, holdout_weeks, model), staffing)


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
    queues = [_forecast_queue(source, queue_id, history_start, history_weeks, holdout_weeks, model, goals)
              for queue_id in queue_ids]
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


@dataclass(frozen=True, slots=True)
class QueueTargets:
    """A queue's service targets as the planner staffs them (the queue settings of HR's targets API)."""

    queue_id: str
    sl_target: float = 0.8
    t_s: float = 20.0
    patience_s: float | None = None  # mean caller patience: Erlang A; None: Erlang C (nobody hangs up)
    max_occupancy: float = 1.0
    asa_goal: float | None = None
    abandon_goal: float | None = None

    def goals(self, shrinkage: float) -> StaffingGoals:
        return StaffingGoals(self.sl_target, self.t_s, self.max_occupancy, self.asa_goal, self.abandon_goal,
                             self.patience_s, shrinkage)


class TargetSource(Protocol):
    """Where the stored per-queue targets come from (the KPI API)."""

    def queue_targets(self) -> dict[str, QueueTargets]: ...


@dataclass(frozen=True)
class RosterOptions:
    """How the week is staffed once the forecast is made.

    ``shrinkage`` is the share of paid time lost to absence, training, meetings: everything except the
    breaks, which the shift templates place (applying a break allowance here too would count breaks twice).
    """

    templates: tuple[ShiftTemplate, ...]
    employees: tuple[Employee, ...]
    rules: RosterRules = field(default_factory=RosterRules)
    shrinkage: float = 0.0
    shift_time_limit_s: float = 10.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.shrinkage < 1.0:
            raise ValueError("shrinkage must be in [0, 1)")
        if not self.templates:
            raise ValueError("at least one shift template is needed")
        if not self.employees:
            raise ValueError("at least one employee is needed")


@dataclass(frozen=True)
class RosterPlan:
    """The week from history to roster: per queue the forecast and agents, the shift plans, the roster."""

    forecast: WeekPlan
    targets: tuple[QueueTargets, ...]
    shift_plans: dict[str, ShiftPlan]
    roster: Roster
    employees: tuple[Employee, ...]

    @property
    def lp_bound_hours(self) -> float:
        """Σ of the queues' LP bounds: no roster covering the requirement can pay fewer hours."""
        return sum(p.lp_bound for p in self.shift_plans.values())

    @property
    def gap(self) -> float:
        """(roster's paid hours − LP bound) / paid hours."""
        paid = self.roster.paid_hours
        return (paid - self.lp_bound_hours) / paid if paid > 0 else 0.0

    def slot_start(self, slot: int) -> datetime:
        return self.forecast.week_start + slot * INTERVAL

    def roster_rows(self) -> list[dict[str, Any]]:
        """One row per rostered shift (the CSV's rows): who works which queue when, breaks and paid hours."""
        names = {e.employee_id: e.name for e in self.employees}
        rows = []
        for sh in self.roster.shifts:
            rows.append({
                "employee_id": sh.employee_id, "name": names[sh.employee_id], "queue_id": sh.queue_id,
                "template": sh.template, "start": self.slot_start(sh.start_slot).isoformat(),
                "end": self.slot_start(sh.start_slot + sh.length_slots).isoformat(),
                "breaks": [{"start": self.slot_start(self._unwrap(sh.start_slot, b)).isoformat(),
                            "end": self.slot_start(self._unwrap(sh.start_slot, b) + length).isoformat()}
                           for b, length in sh.breaks],
                "paid_hours": sh.paid_slots * self.roster.slot_hours, "extra": sh.extra,
            })
        return rows

    def _unwrap(self, start_slot: int, slot: int) -> int:
        """A slot of the week as an offset from the week start that is not before ``start_slot``."""
        horizon = int(WEEK / INTERVAL)
        return start_slot + (slot - start_slot) % horizon

    def schedule(self, schedule_id: str, teams: dict[str, str]) -> dict[str, Any]:
        """The roster as a body of HR's ``POST /v1/schedules`` (``teams``: employee id -> team id)."""
        rows = self.roster_rows()
        return {"schedule_id": schedule_id, "period_start": self.forecast.week_start.isoformat(),
                "period_end": (self.forecast.week_start + WEEK).isoformat(),
                "shifts": [{"shift_id": f"{schedule_id}:{i}", "employee_id": r["employee_id"],
                            "team_id": teams[r["employee_id"]], "start": r["start"], "end": r["end"],
                            "breaks": r["breaks"]} for i, r in enumerate(rows)]}

    def as_dict(self) -> dict[str, Any]:
        """The JSON form (HR's ``POST /v1/plans/week`` answer and ``callstream plan week --format json``)."""
        week = self.forecast.as_dict()
        del week["shift_plan"]  # one plan per queue here, under each queue
        for q, t in zip(week["queues"], self.targets, strict=True):
            q["targets"] = asdict(t)
            q["requirement"] = [i["agents"] for i in q["intervals"]]
            q["shift_plan"] = plan_dict(self.shift_plans[t.queue_id])
        r = self.roster
        week["roster"] = {
            "status": r.status, "employees": r.employees, "paid_hours": r.paid_hours, "cost": r.cost,
            "lp_bound_hours": self.lp_bound_hours, "gap": self.gap, "weekend_spread": r.weekend_spread,
            "night_spread": r.night_spread, "solve_time_s": r.solve_time_s, "shifts": self.roster_rows(),
            "unfilled": [{"queue_id": u.queue_id, "template": u.template,
                          "start": self.slot_start(u.start_slot).isoformat(), "count": u.count} for u in r.unfilled],
        }
        return week


def plan_week(
    source: HistorySource,
    targets: Sequence[QueueTargets],
    week_start: datetime,
    options: RosterOptions,
    *,
    history_weeks: int,
    holdout_weeks: int = 1,
    forecaster: SeasonalForecaster | None = None,
) -> RosterPlan:
    """History -> forecast per queue and interval (with its hold-out accuracy) -> agents per interval
    (Erlang A with each queue's patience and targets, ``options.shrinkage`` applied once) -> a shift
    plan per queue (CP-SAT, breaks placed) -> a roster of ``options.employees`` under their contracts.

    Each queue gets its own shift plan: its agents are staffed as if dedicated to it, and the roster gives
    a queue's shifts only to employees with its skill.
    """
    check_week_start(week_start)
    week_start = week_start.astimezone(UTC)
    queue_ids = [t.queue_id for t in targets]
    if not queue_ids or len(set(queue_ids)) != len(queue_ids):
        raise ValueError("give one or more distinct queues")
    if not 1 <= holdout_weeks < history_weeks:
        raise ValueError("holdout_weeks must be >= 1 and leave at least one week to fit on")
    model = forecaster if forecaster is not None else SeasonalForecaster()
    history_start = week_start - history_weeks * WEEK
    queues = [_forecast_queue(source, t.queue_id, history_start, history_weeks, holdout_weeks, model,
                              t.goals(options.shrinkage)) for t in targets]
    requirements = {q.queue_id: [r.agents for r in q.staffing or []] for q in queues}
    total = [sum(col) for col in zip(*requirements.values(), strict=True)]
    shift_plans = {
        # A week of a 24/7 center wraps around: a Sunday-night shift covers Monday morning.
        queue_id: plan_shifts(req, options.templates, cyclic=True, slot_hours=INTERVAL.total_seconds() / 3600,
                              time_limit_s=options.shift_time_limit_s)
        for queue_id, req in requirements.items()
    }
    roster = build_roster([QueueShifts(q, p, options.templates) for q, p in shift_plans.items()],
                          options.employees, options.rules)
    week = WeekPlan(week_start, history_start, history_weeks, queues, total, None)
    return RosterPlan(week, tuple(targets), shift_plans, roster, options.employees)
