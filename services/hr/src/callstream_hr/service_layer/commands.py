"""What the HR use cases take: the request bodies of the HR API (pydantic: a bad field gives 422 with its path)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, Field, model_validator

Role = Literal["agent", "senior_operator", "team_lead", "supervisor", "qa", "trainer", "hr"]
ExitReason = Literal["supervisor", "work_environment", "workload_pressure", "pay", "other"]
SessionType = Literal["business", "systems", "rules_ethics", "soft_skills"]
Stage = Literal["theory", "business", "systems_skills", "on_site_shadowing", "on_site_supervised", "graduated"]
AbsenceReason = Literal["sick", "vacation", "personal", "unexcused", "training", "other"]
Ident = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")
QueueId = Annotated[str, Field(min_length=1, max_length=200)]


class TeamIn(BaseModel):
    id: str = Ident
    name: str = Field(min_length=1, max_length=200)
    lead_id: str | None = None


class TeamChangeIn(BaseModel):
    """A new name and/or lead. A new lead takes over the team's active members from `effective_on`
    (past or today): each gets a history record and an employment event with the new team_lead_id."""

    effective_on: date
    name: str | None = Field(default=None, min_length=1, max_length=200)
    lead_id: str | None = Field(default=None, min_length=1, max_length=64)

    @model_validator(mode="after")
    def _something(self) -> TeamChangeIn:
        if not self.model_fields_set & {"name", "lead_id"}:
            raise ValueError("give name and/or lead_id")
        if "name" in self.model_fields_set and self.name is None:
            raise ValueError("name cannot be null")
        return self


class RowChangeIn(BaseModel):
    senior_id: str | None = Field(min_length=1, max_length=64)


class RowIn(BaseModel):
    id: str = Ident
    team_id: str = Ident
    senior_id: str | None = None


class HireIn(BaseModel):
    id: str = Ident
    full_name: str = Field(min_length=1, max_length=200)
    email: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=50)
    role: Role
    team_id: str | None = None
    row_id: str | None = None
    fte: float = Field(default=1.0, gt=0, le=1)
    hired_on: date
    training_stage: Stage | None = None


class LeaveIn(BaseModel):
    left_on: date
    exit_reason: ExitReason
    voluntary: bool = True
    exit_interview: str | None = Field(default=None, max_length=10_000)
    reason_detail: str = Field(default="", max_length=500)


class ChangeIn(BaseModel):
    """A role and/or team (row) change from `effective_on`. A field left out keeps its value; `team_id` or
    `row_id` given as null takes the employee out of their team or row. A new team without `row_id`
    leaves the row empty (rows belong to teams)."""

    effective_on: date
    role: Role | None = None
    team_id: str | None = Field(default=None, min_length=1, max_length=64)
    row_id: str | None = Field(default=None, min_length=1, max_length=64)
    reason: str | None = Field(default=None, max_length=500)

    @model_validator(mode="after")
    def _something(self) -> ChangeIn:
        if not self.model_fields_set & {"role", "team_id", "row_id"}:
            raise ValueError("give at least one of role, team_id, row_id")
        if "role" in self.model_fields_set and self.role is None:
            raise ValueError("role cannot be null")
        return self


class SkillIn(BaseModel):
    skill: str = Ident
    proficiency: int = Field(ge=1, le=5)


class StageIn(BaseModel):
    stage: Stage


class AttendeeIn(BaseModel):
    employee_id: str = Ident
    attended: bool


class SessionIn(BaseModel):
    type: SessionType
    title: str = Field(min_length=1, max_length=200)
    starts_at: AwareDatetime
    attendance: list[AttendeeIn] = []


class ExamIn(BaseModel):
    employee_id: str = Ident
    name: str = Field(min_length=1, max_length=200)
    taken_at: AwareDatetime
    score: float = Field(ge=0, le=100)
    pass_mark: float = Field(default=70.0, ge=0, le=100)


class CostIn(BaseModel):
    entry_id: str = Ident
    cost_center_id: str = Ident
    period_start: AwareDatetime
    period_end: AwareDatetime
    amount_minor: int = Field(ge=0)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    category: str = Field(min_length=1, max_length=64)

    @model_validator(mode="after")
    def _period(self) -> CostIn:
        if self.period_end <= self.period_start:
            raise ValueError("period_end must be after period_start")
        return self


class BreakIn(BaseModel):
    start: AwareDatetime
    end: AwareDatetime
    activity: str = "break"


class ShiftIn(BaseModel):
    shift_id: str = Ident
    employee_id: str = Ident
    team_id: str = Ident
    start: AwareDatetime
    end: AwareDatetime
    breaks: list[BreakIn] = []

    @model_validator(mode="after")
    def _inside(self) -> ShiftIn:
        if self.end <= self.start:
            raise ValueError("shift end must be after its start")
        for b in self.breaks:
            if not (self.start <= b.start < b.end <= self.end):
                raise ValueError("every break must lie inside its shift")
        return self


class ScheduleIn(BaseModel):
    schedule_id: str = Ident
    period_start: AwareDatetime
    period_end: AwareDatetime
    shifts: list[ShiftIn]

    @model_validator(mode="after")
    def _check(self) -> ScheduleIn:
        if self.period_end <= self.period_start:
            raise ValueError("period_end must be after period_start")
        ids = [s.shift_id for s in self.shifts]
        if len(ids) != len(set(ids)):
            raise ValueError("shift_id values must be unique")
        return self


class PunchIn(BaseModel):
    employee_id: str = Ident
    kind: Literal["in", "out"]
    at: AwareDatetime
    device: str = Field(default="", max_length=64)


class AbsenceIn(BaseModel):
    employee_id: str = Ident
    start: AwareDatetime
    end: AwareDatetime
    reason: AbsenceReason

    @model_validator(mode="after")
    def _period(self) -> AbsenceIn:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class GoalsIn(BaseModel):
    sl_target: float = Field(default=0.8, ge=0, le=1)
    t_s: float = Field(default=20, ge=0)
    max_occupancy: float = Field(default=1.0, gt=0, le=1)
    asa_goal: float | None = Field(default=None, ge=0)
    abandon_goal: float | None = Field(default=None, ge=0, le=1)
    patience_s: float | None = Field(default=None, gt=0)
    shrinkage: float = Field(default=0.0, ge=0, lt=1)


class StaffingIn(GoalsIn):
    calls: float = Field(ge=0)
    interval_s: float = Field(default=1800, gt=0)
    aht_s: float = Field(gt=0)


class BreakRuleIn(BaseModel):
    duration_slots: int = Field(ge=1)
    earliest_offset: int = Field(ge=0)
    latest_offset: int = Field(ge=0)
    paid: bool = False


class TemplateIn(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    length_slots: int = Field(ge=1)
    start_slots: list[int] | None = None
    breaks: list[BreakRuleIn] = []


class ShiftOptionsIn(BaseModel):
    templates: list[TemplateIn] = Field(min_length=1)
    time_limit_s: float = Field(default=10.0, gt=0, le=60)
    understaffing_penalty_slots: int | None = Field(default=None, ge=1)


class ShiftPlanIn(ShiftOptionsIn):
    requirement: list[int] = Field(min_length=1, max_length=2016)
    cyclic: bool = True
    slot_hours: float = Field(default=0.5, gt=0)


class ForecastIn(BaseModel):
    queues: list[QueueId] = Field(min_length=1, max_length=50)
    # Start of the week to forecast (a 30-minute boundary, e.g. Monday 00:00 UTC or local); default: next
    # Monday 00:00 UTC.
    week_start: AwareDatetime | None = None
    history_weeks: int = Field(default=6, ge=2, le=52)
    holdout_weeks: int = Field(default=1, ge=1, le=51)
    lookback_weeks: int = Field(default=4, ge=1, le=52)
    decay: float = Field(default=0.7, gt=0, le=1)
    trend: bool = False
    staffing: GoalsIn | None = None
    shifts: ShiftOptionsIn | None = None

    @model_validator(mode="after")
    def _check(self) -> ForecastIn:
        if self.holdout_weeks >= self.history_weeks:
            raise ValueError("holdout_weeks must be smaller than history_weeks (at least one week to fit on)")
        if len(set(self.queues)) != len(self.queues):
            raise ValueError("each queue may appear once")
        if self.shifts is not None and self.staffing is None:
            raise ValueError("a shift plan needs staffing goals (agents per interval to cover)")
        return self


class QueueTargetsIn(BaseModel):
    """A queue's service targets for the planner: SL goal within t_s, patience (Erlang A; none: Erlang C).
    A target left out is the queue's stored one (the KPI API's `/v1/queues/targets`), else 80 % in 20 s and
    no patience."""

    queue_id: QueueId
    sl_target: float | None = Field(default=None, ge=0, le=1)
    t_s: float | None = Field(default=None, ge=0)
    patience_s: float | None = Field(default=None, gt=0)
    max_occupancy: float = Field(default=1.0, gt=0, le=1)
    asa_goal: float | None = Field(default=None, ge=0)
    abandon_goal: float | None = Field(default=None, ge=0, le=1)


class IntervalIn(BaseModel):
    start: AwareDatetime
    offered: float = Field(ge=0)
    aht_s: float | None = Field(default=None, ge=0)


class QueueHistoryIn(BaseModel):
    queue_id: QueueId
    intervals: list[IntervalIn] = Field(max_length=52 * 336)


class ContractIn(BaseModel):
    """An HR employee to roster and their contract; skills default to the employee's skills in HR."""

    employee_id: str = Ident
    skills: list[QueueId] | None = None
    min_weekly_hours: float = Field(default=0, ge=0, le=168)
    max_weekly_hours: float = Field(default=40, ge=0, le=168)
    min_days_off: int = Field(default=2, ge=0, le=7)
    unavailable_days: list[int] = Field(default=[], description="0 = Monday of the planned week ... 6 = Sunday")
    nights_allowed: bool = True
    hourly_cost: float = Field(default=1.0, ge=0)

    @model_validator(mode="after")
    def _check(self) -> ContractIn:
        if self.min_weekly_hours > self.max_weekly_hours:
            raise ValueError("min_weekly_hours must be <= max_weekly_hours")
        if any(not 0 <= d <= 6 for d in self.unavailable_days):
            raise ValueError("unavailable_days must be in 0..6 (0 = Monday)")
        return self


class PlanWeekIn(BaseModel):
    # Start of the week to plan: a 30-minute boundary (Monday 00:00 UTC, or the center's local Monday).
    week_start: AwareDatetime
    history_weeks: int = Field(default=6, ge=2, le=52)
    holdout_weeks: int = Field(default=1, ge=1, le=51)
    queues: list[QueueTargetsIn] = Field(min_length=1, max_length=50)
    # History per queue and 30-minute interval (e.g. aggregated from a file); none: read from the KPI API.
    history: list[QueueHistoryIn] | None = None
    shrinkage: float = Field(default=0.0, ge=0, lt=1, description="absence, training, meetings: not breaks")
    templates: list[TemplateIn] = Field(min_length=1)
    employees: list[ContractIn] = Field(min_length=1, max_length=2000)
    min_rest_hours: float = Field(default=11, ge=0, le=48)
    time_limit_s: float = Field(default=20, gt=0, le=120)
    # Publish the roster as this HR schedule (POST /v1/schedules): adherence is then measured against it.
    # (at most 56 characters: its shifts are numbered `<publish_as>:<n>`, and shift ids have at most 64).
    publish_as: str | None = Field(default=None, min_length=1, max_length=56, pattern=r"^[A-Za-z0-9._:-]+$")

    @model_validator(mode="after")
    def _check(self) -> PlanWeekIn:
        if self.holdout_weeks >= self.history_weeks:
            raise ValueError("holdout_weeks must leave at least one history week to fit on")
        if len({q.queue_id for q in self.queues}) != len(self.queues):
            raise ValueError("queues: a queue_id appears twice")
        if len({e.employee_id for e in self.employees}) != len(self.employees):
            raise ValueError("employees: an employee_id appears twice")
        return self
