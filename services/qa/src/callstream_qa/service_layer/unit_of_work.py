"""What the QA use cases need of storage: one repository per kind of record and the unit of work holding them
(one transaction; events staged in the outbox commit with the change). `adapters.repositories` implements
them on SQLAlchemy; the unit tests use an in-memory one.

Records are the service's table rows (`adapters.orm`): plain objects once built, which both the SQL and the
in-memory repositories store."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from google.protobuf.message import Message

from callstream_qa.adapters.orm import CoachingItemRow, ContactRow, EvaluationRow, FormRow


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


class ContactRepository(Protocol):
    def first_segment(self, call_id: str) -> ContactRow | None:
        """The call's contact with the lowest segment."""
        ...


class CoachingRepository(Protocol):
    def add(self, item: CoachingItemRow) -> None: ...
    def remove_open(self, evaluation_id: str) -> None:
        """Drop the evaluation's items not yet acknowledged."""
        ...


class UnitOfWork(abc.ABC):
    """One transaction: what is added or changed is kept by `commit`, dropped otherwise. Subclasses (SQL, in
    memory) set the repositories."""

    forms: FormRepository
    evaluations: EvaluationRepository
    contacts: ContactRepository
    coaching: CoachingRepository

    @abc.abstractmethod
    def publish(self, topic: str, key: str, message: Message, occurred_at: datetime | None = None) -> None:
        """Stage `message` in the outbox, in this transaction."""

    @abc.abstractmethod
    def commit(self) -> None:
        """Keep the changes and the staged events."""
