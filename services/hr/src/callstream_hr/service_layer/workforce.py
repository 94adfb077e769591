"""Workforce planning: staffing of one interval, shift plans, the week's forecast and the week's roster of
HR's employees (published as a schedule on request)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from callstream_core.db import now
from callstream_hr.domain.erlang import StaffingResult, required_agents
from callstream_hr.domain.forecast import IntervalFigures, SeasonalForecaster
from callstream_hr.domain.history import RecordedHistory
from callstream_hr.domain.roster import Contract, RosterRules
from callstream_hr.domain.roster import Employee as RosterEmployee
from callstream_hr.domain.shifts import BreakRule, ShiftPlan, ShiftTemplate, plan_shifts
from callstream_hr.service_layer.commands import (
    ForecastIn,
    PlanWeekIn,
    ScheduleIn,
    ShiftOptionsIn,
    ShiftPlanIn,
    StaffingIn,
)
from callstream_hr.service_layer.common import Caller, audit, utc
from callstream_hr.service_layer.errors import Invalid, Unavailable, UpstreamFailed
from callstream_hr.service_layer.planning import (
    HistorySource,
    HistoryUnavailable,
    QueueTargets,
    RosterOptions,
    RosterPlan,
    ShiftOptions,
    StaffingGoals,
    TargetSource,
    WeekPlan,
    forecast_week,
    plan_week,
)
from callstream_hr.service_layer.schedules import Published, publish_schedule
from callstream_hr.service_layer.unit_of_work import UnitOfWork


def staffing(body: StaffingIn) -> StaffingResult:
    try:
        return required_agents(body.calls, body.interval_s, body.aht_s, body.sl_target, body.t_s,
                               max_occupancy=body.max_occupancy, asa_goal=body.asa_goal,
                               abandon_goal=body.abandon_goal, patience_s=body.patience_s, shrinkage=body.shrinkage)
    except ValueError as exc:
        raise Invalid(str(exc)) from exc


def plan(body: ShiftPlanIn) -> ShiftPlan:
    try:
        return plan_shifts(body.requirement, templates(body), cyclic=body.cyclic, slot_hours=body.slot_hours,
                           time_limit_s=body.time_limit_s, understaffing_penalty_slots=body.understaffing_penalty_slots)
    except ValueError as exc:
        raise Invalid(str(exc)) from exc


def forecast(history: HistorySource | None, body: ForecastIn) -> WeekPlan:
    if history is None:
        raise Unavailable("no history source: set KPI_API_URL and KPI_API_TOKEN")
    goals = StaffingGoals(**body.staffing.model_dump()) if body.staffing else None
    try:
        options = ShiftOptions(tuple(templates(body.shifts)), body.shifts.time_limit_s,
                               body.shifts.understaffing_penalty_slots) if body.shifts else None
        return forecast_week(history, body.queues, utc(body.week_start) if body.week_start else next_monday(),
                             history_weeks=body.history_weeks, holdout_weeks=body.holdout_weeks,
                             forecaster=SeasonalForecaster(body.lookback_weeks, body.decay, body.trend),
                             goals=goals, shifts=options)
    except HistoryUnavailable as exc:
        raise UpstreamFailed(str(exc)) from exc
    except ValueError as exc:  # BadHistory included
        raise Invalid(str(exc)) from exc


def plan_roster(uow: UnitOfWork, history: HistorySource | None, stored_targets: TargetSource | None,
                body: PlanWeekIn, caller: Caller) -> tuple[RosterPlan, Published | None]:
    """History -> forecast -> agents -> shifts -> a roster of HR's employees under the given contracts;
    with `publish_as`, published as that schedule."""
    source: HistorySource | None = history
    if body.history is not None:
        source = RecordedHistory({q.queue_id: [IntervalFigures(utc(i.start), i.offered, i.aht_s)
                                               for i in q.intervals] for q in body.history})
    if source is None:
        raise Unavailable("no history: give `history`, or set KPI_API_URL and KPI_API_TOKEN")
    staff, teams = [], {}
    for n, c in enumerate(body.employees):
        emp = uow.employees.get(c.employee_id)
        if emp is None or emp.left_on is not None:
            raise Invalid([{"loc": ["body", "employees", n, "employee_id"], "type": "value_error",
                            "msg": f"employee {c.employee_id!r} is not a current HR employee"}])
        if body.publish_as and not emp.team_id:
            raise Invalid([{"loc": ["body", "employees", n, "employee_id"], "type": "value_error",
                            "msg": f"employee {c.employee_id!r} has no team; a schedule needs one"}])
        skills = c.skills if c.skills is not None else [k.skill for k in uow.skills.of(c.employee_id)]
        contract = Contract(c.min_weekly_hours, c.max_weekly_hours, c.min_days_off,
                            frozenset(c.unavailable_days), c.nights_allowed, c.hourly_cost)
        staff.append(RosterEmployee(c.employee_id, emp.full_name, frozenset(skills), contract, emp.team_id or ""))
        teams[c.employee_id] = emp.team_id or ""
    try:
        stored = stored_targets.queue_targets() if stored_targets is not None else {}
    except HistoryUnavailable as exc:
        raise UpstreamFailed(str(exc)) from exc
    targets = []
    for q in body.queues:
        known = stored.get(q.queue_id, QueueTargets(q.queue_id))
        targets.append(QueueTargets(q.queue_id, known.sl_target if q.sl_target is None else q.sl_target,
                                    known.t_s if q.t_s is None else q.t_s,
                                    known.patience_s if q.patience_s is None else q.patience_s,
                                    q.max_occupancy, q.asa_goal, q.abandon_goal))
    try:
        options = RosterOptions(tuple(templates(body)), tuple(staff),
                                RosterRules(min_rest_hours=body.min_rest_hours, time_limit_s=body.time_limit_s),
                                body.shrinkage, body.time_limit_s)
        roster = plan_week(source, targets, body.week_start, options, history_weeks=body.history_weeks,
                           holdout_weeks=body.holdout_weeks)
    except HistoryUnavailable as exc:
        raise UpstreamFailed(str(exc)) from exc
    except ValueError as exc:  # BadHistory included
        raise Invalid(str(exc)) from exc
    audit(uow, caller, "plan_week", f"employees={len(staff)}")  # the answer names them: personal data
    if body.publish_as:
        return roster, publish_schedule(uow, ScheduleIn.model_validate(roster.schedule(body.publish_as, teams)))
    uow.commit()
    return roster, None


def templates(body: ShiftOptionsIn | PlanWeekIn) -> list[ShiftTemplate]:
    return [ShiftTemplate(t.name, t.length_slots, tuple(t.start_slots) if t.start_slots else None,
                          tuple(BreakRule(b.duration_slots, b.earliest_offset, b.latest_offset, b.paid)
                                for b in t.breaks))
            for t in body.templates]


def next_monday() -> datetime:
    today = now().date()
    return datetime.combine(today + timedelta(days=7 - today.weekday()), datetime.min.time(), UTC)
