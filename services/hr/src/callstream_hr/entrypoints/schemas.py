"""Answers of the HR API (typed: the OpenAPI lists every field). Timestamps are ISO 8601 strings with the
UTC offset (`2026-11-02T08:00:00+00:00`), as the API always wrote them."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, RootModel

from callstream_hr.domain.forecast import HoldoutAccuracy
from callstream_hr.domain.people.attendance import AttendanceRate
from callstream_hr.domain.people.attrition import AttritionFigure
from callstream_hr.domain.people.org import Warning
from callstream_hr.service_layer.commands import (
    AbsenceReason,
    ExitReason,
    QueueTargetsIn,
    Role,
    SessionType,
    Stage,
)

# ------------------------------------------------------------------ organisation


class TeamOut(BaseModel):
    id: str
    name: str
    lead_id: str | None


class TeamListedOut(TeamOut):
    agents: int  # active agents


class TeamChangedOut(TeamOut):
    members_with_new_lead: list[str]


class RowOut(BaseModel):
    id: str
    team_id: str
    senior_id: str | None


class RowListedOut(RowOut):
    agents: int  # active agents


class OrgReportOut(BaseModel):
    teams: dict[str, int]  # active agents per team
    rows: dict[str, int]
    warnings: list[Warning]


# ------------------------------------------------------------------ people


class EmployeeOut(BaseModel):
    """An employee; the personal fields (from full_name on) only for HR, managers and admins."""

    id: str
    role: Role
    team_id: str | None
    row_id: str | None
    fte: float
    hired_on: str
    left_on: str | None
    training_stage: Stage | None
    full_name: str | None = None
    email: str | None = None
    phone: str | None = None
    exit_reason: ExitReason | None = None
    voluntary: bool | None = None
    exit_interview: str | None = None


class EmployeeDetailOut(EmployeeOut):
    skills: dict[str, int]  # skill -> proficiency


class SkillsOut(RootModel[dict[str, int]]):
    """An employee's skills after a change: skill -> proficiency."""


class PlacementOut(BaseModel):
    role: str
    team_id: str | None
    row_id: str | None


class ChangeOut(BaseModel):
    employee: EmployeeOut
    change: str  # role, team or role+team
    effective_on: str
    previous: PlacementOut


class HistoryRecordOut(BaseModel):
    """One hire, change or leaving; reason and who recorded it only for HR and managers."""

    effective_on: str
    change: str
    role: str
    team_id: str | None
    row_id: str | None
    team_lead_id: str | None
    reason: str | None = None
    recorded_by: str | None = None
    recorded_at: str | None = None


class AuditEntryOut(BaseModel):
    at: str
    subject: str
    role: str
    action: str
    target: str


# ------------------------------------------------------------------ training and costs


class AttendeeOut(BaseModel):
    employee_id: str
    attended: bool


class SessionOut(BaseModel):
    id: int
    type: SessionType
    title: str
    starts_at: str
    attendance: list[AttendeeOut]


class ExamOut(BaseModel):
    id: int
    employee_id: str
    name: str
    taken_at: str
    score: float
    pass_mark: float
    passed: bool | None = None  # in listings


class CostOut(BaseModel):
    entry_id: str
    cost_center_id: str
    period_start: str
    period_end: str
    amount_minor: int
    currency: str
    category: str


# ------------------------------------------------------------------ schedules and attendance


class ScheduledBreakOut(BaseModel):
    start: str
    end: str
    activity: str


class ShiftOut(BaseModel):
    shift_id: str
    employee_id: str
    team_id: str
    start: str
    end: str
    breaks: list[ScheduledBreakOut]


class ScheduleOut(BaseModel):
    schedule_id: str
    version: int
    period_start: str
    period_end: str
    shifts: list[ShiftOut]


class ScheduleListedOut(BaseModel):
    schedule_id: str
    version: int
    period_start: str
    period_end: str
    published_at: str
    shifts: int


class PunchOut(BaseModel):
    employee_id: str
    kind: str
    at: str
    device: str


class PunchImportOut(BaseModel):
    file: str
    imported: int
    already_present: int


class AbsenceOut(BaseModel):
    absence_id: str
    employee_id: str
    start: str
    end: str
    reason: AbsenceReason


class LateOut(BaseModel):
    shift_id: str
    employee_id: str
    start: str
    first_in: str | None
    late_minutes: float


class AbsentOut(BaseModel):
    shift_id: str
    employee_id: str
    start: str
    reason: str | None


class AttendanceOut(BaseModel):
    rates: list[AttendanceRate]
    late: list[LateOut]
    absent: list[AbsentOut]


class AttritionOut(BaseModel):
    """The period's figure (callstream_hr.domain.people.attrition.AttritionFigure) and, with ?by=, one per
    exit reason or team lead."""

    period: str
    period_start: date
    period_end: date  # exclusive
    leavers: int
    average_fte: float
    rate: float | None  # percent; None when nobody was employed
    annualised: float | None
    by: dict[str, AttritionFigure] | None = None


# ------------------------------------------------------------------ workforce planning


class IntervalOut(BaseModel):
    start: str
    calls: float
    aht_s: float
    agents: int
    raw_agents: int
    service_level: float
    asa_s: float
    occupancy: float
    abandon_rate: float
    model: str


class ForecastIntervalOut(BaseModel):
    """An interval's forecast; the staffing fields when staffing goals were given."""

    start: str
    calls: float
    aht_s: float
    agents: int | None = None
    raw_agents: int | None = None
    service_level: float | None = None
    asa_s: float | None = None
    occupancy: float | None = None
    abandon_rate: float | None = None
    model: str | None = None


class AssignmentOut(BaseModel):
    template: str
    start_slot: int
    count: int


class ShiftPlanOut(BaseModel):
    status: str
    covered: bool
    headcount: int
    paid_hours: float
    lp_bound_hours: float
    gap: float
    assignments: list[AssignmentOut]
    coverage: list[int]
    over: list[int]
    under: list[int]


class ForecastQueueOut(BaseModel):
    queue_id: str
    history_calls: float
    accuracy: HoldoutAccuracy
    intervals: list[ForecastIntervalOut]


class ForecastOut(BaseModel):
    week_start: str
    history_start: str
    history_weeks: int
    interval_minutes: int
    queues: list[ForecastQueueOut]
    requirement: list[int] | None
    shift_plan: ShiftPlanOut | None


class QueuePlanOut(BaseModel):
    queue_id: str
    history_calls: float
    accuracy: HoldoutAccuracy
    targets: QueueTargetsIn
    intervals: list[IntervalOut]
    requirement: list[int]
    shift_plan: ShiftPlanOut


class BreakOut(BaseModel):
    start: str
    end: str


class RosteredShiftOut(BaseModel):
    employee_id: str
    name: str
    queue_id: str
    template: str
    start: str
    end: str
    breaks: list[BreakOut]
    paid_hours: float
    extra: bool


class UnfilledOut(BaseModel):
    queue_id: str
    template: str
    start: str
    count: int


class RosterOut(BaseModel):
    status: str
    employees: int
    paid_hours: float
    cost: float
    lp_bound_hours: float
    gap: float
    weekend_spread: int
    night_spread: int
    solve_time_s: float
    shifts: list[RosteredShiftOut]
    unfilled: list[UnfilledOut]


class PublishedOut(BaseModel):
    schedule_id: str
    version: int
    shifts: int
    employees: int


class PlanWeekOut(BaseModel):
    week_start: str
    history_start: str
    history_weeks: int
    interval_minutes: int
    queues: list[QueuePlanOut]
    requirement: list[int]
    roster: RosterOut
    published: PublishedOut | None = None
