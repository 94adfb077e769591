"""What the QA use cases need of storage: one repository per kind of record and the unit of work holding them
(one transaction; events staged in the outbox commit with the change). `adapters.repositories` implements
them on SQLAlchemy; the unit tests use an in-memory one.

Records are the service's table rows (`adapters.orm`): plain objects once built, which both the SQL and the
in-memory repositories store."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

from google.protobuf.message import Message

from callstream_qa.adapters.orm import (
    CalibrationSessionRow,
    CoachingItemRow,
    ContactRow,
    EvaluationRow,
    FormRow,
    PlanItemRow,
    SamplingPlanRow,
)


class FormRepository(Protocol):
    def get(self, form_id: str, version: int) -> FormRow | None: ...
    def latest(self, form_id: str) -> FormRow | None: ...
    def add(self, form: FormRow) -> None: ...
    def list(self) -> Sequence[FormRow]:
        """Every version of every form, by form id and version."""
        ...
    def in_use(self, form_id: str, version: int) -> bool:
        """An evaluation (any status, calibration ones too) uses this version."""
        ...


@dataclass(frozen=True)
class EvaluationFilter:
    """Which evaluations a list shows (calibration scores never): each field set narrows it. `seen_by_agent`
    is an agent's own view (their evaluations, drafts and deleted ones hidden), `seen_by_team` a team
    lead's."""

    agent_id: str | None = None
    team_id: str | None = None
    status: str | None = None
    seen_by_agent: str | None = None
    seen_by_team: str | None = None


class EvaluationRepository(Protocol):
    def get(self, evaluation_id: str) -> EvaluationRow | None: ...
    def add(self, evaluation: EvaluationRow) -> None: ...
    def list(self, where: EvaluationFilter) -> Sequence[EvaluationRow]:
        """Oldest first."""
        ...
    def of_calibration(self, session_id: str) -> Sequence[EvaluationRow]:
        """The calibration session's scores (any status), least recently updated first."""
        ...
    def scored_calls(self) -> set[tuple[str, str]]:
        """(agent id, call id) of every scored evaluation (domain.states.SCORED), calibration ones aside."""
        ...
    def scored_submitted(self, start: datetime, end: datetime) -> Sequence[EvaluationRow]:
        """Scored evaluations (calibration ones aside) submitted in [start, end)."""
        ...


class CalibrationRepository(Protocol):
    def get(self, session_id: str) -> CalibrationSessionRow | None: ...
    def add(self, session: CalibrationSessionRow) -> None: ...
    def created(self, start: datetime, end: datetime) -> Sequence[CalibrationSessionRow]:
        """Sessions created in [start, end)."""
        ...


class SamplingPlanRepository(Protocol):
    def get(self, plan_id: str) -> SamplingPlanRow | None: ...
    def add(self, plan: SamplingPlanRow, items: Sequence[PlanItemRow]) -> None: ...
    def items(self, plan_id: str) -> Sequence[PlanItemRow]:
        """By agent, call and segment."""
        ...
    def starting(self, start: date, end: date) -> Sequence[SamplingPlanRow]:
        """Plans whose period starts in [start, end)."""
        ...


class ContactRepository(Protocol):
    def first_segment(self, call_id: str) -> ContactRow | None:
        """The call's contact with the lowest segment."""
        ...
    def offered(self, start: datetime, end: datetime) -> Sequence[ContactRow]:
        """Contacts offered in [start, end) that reached an agent."""
        ...
    def calls_of_team(self, team_id: str) -> set[str]: ...


@dataclass(frozen=True)
class CoachingFilter:
    """Which coaching items a list shows: each field set narrows it (`seen_by_agent`/`seen_by_team`: an
    agent's or a team lead's view)."""

    agent_id: str | None = None
    open_only: bool = False
    seen_by_agent: str | None = None
    seen_by_team: str | None = None


class CoachingRepository(Protocol):
    def get(self, item_id: str) -> CoachingItemRow | None: ...
    def add(self, item: CoachingItemRow) -> None: ...
    def list(self, where: CoachingFilter) -> Sequence[CoachingItemRow]:
        """By due date, then criterion."""
        ...
    def remove_open(self, evaluation_id: str) -> None:
        """Drop the evaluation's items not yet acknowledged."""
        ...


class UnitOfWork(abc.ABC):
    """One transaction: what is added or changed is kept by `commit`, dropped otherwise. Subclasses (SQL, in
    memory) set the repositories."""

    forms: FormRepository
    evaluations: EvaluationRepository
    calibrations: CalibrationRepository
    plans: SamplingPlanRepository
    contacts: ContactRepository
    coaching: CoachingRepository

    @abc.abstractmethod
    def publish(self, topic: str, key: str, message: Message, occurred_at: datetime | None = None) -> None:
        """Stage `message` in the outbox, in this transaction."""

    @abc.abstractmethod
    def commit(self) -> None:
        """Keep the changes and the staged events."""
