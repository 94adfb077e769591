"""Request bodies (pydantic: bad input -> 422 with the field path) and response bodies of the HTTP API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema

Id = Field(min_length=1, max_length=128)
# The largest integer the databases store (SQLite and PostgreSQL BIGINT): a larger one was a 500 at the
# driver instead of a 422 (issue 17 item 7, found by tests/fuzz).
DB_INT_MAX = 2**63 - 1
# Form versions count edits of one form.
VERSION_MAX = 2**31 - 1


class CriterionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    criterion_id: str = Field(min_length=1, max_length=64)
    label: str = ""
    weight: float = Field(gt=0)
    scale: Literal["yes_no", "1-5", "points"] = "yes_no"
    critical: bool = False
    max_points: int = Field(default=0, ge=0, le=DB_INT_MAX)
    allow_na: bool = True


class SectionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    section_id: str = Field(min_length=1, max_length=64)
    title: str = ""
    criteria: list[CriterionIn] = Field(min_length=1)


class FormBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    sections: list[SectionIn] = Field(min_length=1)


class FormIn(FormBody):
    form_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")


class EvaluationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    call_id: str = Id
    agent_id: str = Field(min_length=1, max_length=64)
    form_id: str = Field(min_length=1, max_length=64)
    form_version: int | None = Field(default=None, ge=1, le=VERSION_MAX)
    evaluator_id: str | None = Field(default=None, min_length=1, max_length=64)
    team_id: str = ""
    answers: dict[str, str] = Field(default_factory=dict)
    comments: str = ""
    contact_at: datetime | None = None
    submit: bool = False


class EvaluationPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    answers: dict[str, str] | None = None
    comments: str | None = None


class ActionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = ""
    answers: dict[str, str] | None = None


class PlanIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    period_start: date
    period_end: date
    per_agent: int = Field(ge=1, le=1000)
    seed: int = Field(default=0, ge=-DB_INT_MAX, le=DB_INT_MAX)
    long_call_s: float = Field(default=600.0, gt=0)


class CalibrationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    call_id: str = Id
    agent_id: str = Field(min_length=1, max_length=64)
    form_id: str = Field(min_length=1, max_length=64)
    form_version: int | None = Field(default=None, ge=1, le=VERSION_MAX)
    reference_evaluator: str | None = None


class CalibrationScoreIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    evaluator_id: str | None = Field(default=None, min_length=1, max_length=64)
    answers: dict[str, str]
    comments: str = ""


# Responses. Field order is the JSON key order clients have always seen; times keep isoformat()'s "+00:00"
# (pydantic alone would write "Z"), so the bodies stay the same text as before the models.
Moment = Annotated[datetime, PlainSerializer(datetime.isoformat, return_type=str, when_used="json"),
                   WithJsonSchema({"type": "string", "format": "date-time"}, mode="serialization")]


class CriterionOut(BaseModel):
    criterion_id: str
    label: str
    weight: float
    scale: Literal["yes_no", "1-5", "points"]
    critical: bool
    max_points: int
    allow_na: bool


class SectionOut(BaseModel):
    section_id: str
    title: str
    criteria: list[CriterionOut]


class FormOut(BaseModel):
    form_id: str
    version: int
    name: str
    in_use: bool
    sections: list[SectionOut]
    created_at: Moment | None


class CriterionResultOut(BaseModel):
    criterion_id: str
    answer: str
    points: float
    max_points: float
    critical_failed: bool
    missed: bool


class EvaluationOut(BaseModel):
    evaluation_id: str
    call_id: str
    agent_id: str
    team_id: str
    evaluator_id: str
    form_id: str
    form_version: int
    status: str
    answers: dict[str, str]
    comments: str
    score: float
    critical_failed: bool
    criteria: list[CriterionResultOut]
    revision: int
    calibration_session_id: str | None
    dispute_reason: str
    contact_at: Moment | None
    created_at: Moment | None
    submitted_at: Moment | None
    updated_at: Moment | None


class CoachingItemOut(BaseModel):
    item_id: str
    evaluation_id: str
    agent_id: str
    team_id: str
    criterion_id: str
    note: str
    due_date: date
    acknowledged_at: Moment | None


class CalibrationStatsOut(BaseModel):
    consensus: float
    spread: float
    stdev: float
    deviations: dict[str, float]
    mean_abs_deviation: float


class CalibrationSessionOut(BaseModel):
    session_id: str
    call_id: str
    agent_id: str
    form_id: str
    form_version: int
    reference_evaluator: str | None
    stats: CalibrationStatsOut | None


class ContactsWrittenOut(BaseModel):
    written: int


class PlanItemOut(BaseModel):
    agent_id: str
    call_id: str
    segment: int
    stratum: str


class PlanCreatedOut(BaseModel):
    plan_id: str
    name: str
    seed: int
    per_agent: int
    items: list[PlanItemOut]


class PlanOut(BaseModel):
    plan_id: str
    name: str
    period_start: date
    period_end: date
    per_agent: int
    seed: int
    items: list[PlanItemOut]


class CoverageOut(BaseModel):
    agent_id: str
    planned: int
    done: int
    coverage: float


class MissedCriterionOut(BaseModel):
    criterion_id: str
    misses: int


class MonitoringFigures(BaseModel):
    month: str
    evaluations: int
    monitoring_score: float
    critical_failures: int
    most_missed: list[MissedCriterionOut]


class AgentKey(BaseModel):
    agent_id: str


class TeamKey(BaseModel):
    team_id: str


# A row of KPI 12 is keyed by agent_id or by team_id (group_by); the key comes first in the JSON, as pydantic
# orders the fields of the last base first.
class AgentMonitoringOut(MonitoringFigures, AgentKey):
    pass


class TeamMonitoringOut(MonitoringFigures, TeamKey):
    pass


class ControllerOut(BaseModel):
    month: str
    evaluations_done: int
    planned: int
    planned_done: int
    plan_coverage: float | None
    calibration_sessions: int
    calibration_mean_abs_deviation: float | None
    turnaround_hours_mean: float | None
    turnaround_hours_median: float | None
