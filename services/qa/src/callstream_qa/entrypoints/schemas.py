"""Request bodies of the HTTP API (pydantic: bad input -> 422 with the field path)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

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
