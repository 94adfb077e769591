"""What the use cases need of storage: one repository per kind of record and the unit of work holding them
(one transaction; events staged in the outbox commit with the change). `adapters.repositories` implements
them on SQLAlchemy; the unit tests use an in-memory one.

Records are the service's table rows (`adapters.models`): plain objects once built, which both the SQL and
the in-memory repositories store."""

from __future__ import annotations

import abc
from collections.abc import Collection, Sequence
from datetime import date, datetime
from typing import Literal, Protocol

from google.protobuf.message import Message

from callstream_hr.adapters.models import (
    AbsenceRow,
    AuditLog,
    CostEntryRow,
    Employee,
    EmploymentRecord,
    Exam,
    PunchRow,
    Row,
    Schedule,
    ShiftRow,
    Skill,
    Team,
    TrainingAttendance,
    TrainingSession,
)


class TeamRepository(Protocol):
    def get(self, team_id: str, *, for_update: bool = False) -> Team | None: ...
    def add(self, team: Team) -> None: ...
    def list(self) -> Sequence[Team]: ...


class RowRepository(Protocol):
    def get(self, row_id: str) -> Row | None: ...
    def add(self, row: Row) -> None: ...
    def list(self, team_id: str | None = None) -> Sequence[Row]: ...


class EmployeeRepository(Protocol):
    def get(self, employee_id: str, *, for_update: bool = False) -> Employee | None: ...
    def add(self, employee: Employee) -> None: ...
    def list(self, team_id: str | None = None, role: str | None = None,
             active: bool | None = None) -> Sequence[Employee]: ...
    def hired_before(self, day: date) -> Sequence[Employee]: ...
    def ids_in_team(self, team_id: str) -> set[str]: ...
    def known(self, employee_ids: Collection[str]) -> set[str]: ...
    def agents_per(self, placement: Literal["team_id", "row_id"]) -> dict[str, int]:
        """Active agents per team or row."""
        ...


class HistoryRepository(Protocol):
    def add(self, record: EmploymentRecord) -> None: ...
    def last_change(self, employee_id: str) -> date | None: ...
    def of(self, employee_id: str) -> Sequence[EmploymentRecord]: ...
    def of_hired_before(self, day: date) -> Sequence[EmploymentRecord]: ...


class SkillRepository(Protocol):
    def of(self, employee_id: str) -> Sequence[Skill]: ...
    def replace(self, employee_id: str, skills: Sequence[Skill]) -> None: ...


class TrainingRepository(Protocol):
    def add_session(self, session: TrainingSession, attendance: Sequence[TrainingAttendance]) -> None:
        """Stores the session (its id is set) and its attendance (session_id filled in)."""
        ...
    def add_exam(self, exam: Exam) -> None:
        """Stores the exam (its id is set)."""
        ...
    def sessions(self, start: datetime | None, end: datetime | None,
                 session_type: str | None) -> Sequence[TrainingSession]: ...
    def attendance_of(self, session_ids: Collection[int]) -> Sequence[TrainingAttendance]: ...
    def exams(self, employee_id: str | None = None, team_id: str | None = None, start: datetime | None = None,
              end: datetime | None = None) -> Sequence[Exam]: ...


class CostRepository(Protocol):
    def get(self, entry_id: str) -> CostEntryRow | None: ...
    def add(self, entry: CostEntryRow) -> None: ...
    def list(self, cost_center_id: str | None) -> Sequence[CostEntryRow]: ...


class ScheduleRepository(Protocol):
    def get(self, schedule_id: str, *, for_update: bool = False) -> Schedule | None: ...
    def add(self, schedule: Schedule) -> None: ...
    def list(self, start: datetime | None, end: datetime | None) -> Sequence[Schedule]: ...
    def shift_counts(self, schedule_ids: Collection[str]) -> dict[str, int]: ...
    def shifts_of(self, schedule_id: str, team_id: str | None = None) -> Sequence[ShiftRow]: ...
    def replace_shifts(self, schedule_id: str, shifts: Sequence[ShiftRow]) -> Sequence[str]:
        """Replace the schedule's shifts; returns the new shift ids another schedule already uses (then
        nothing is stored)."""
        ...
    def shifts_starting(self, start: datetime, end: datetime, team_id: str | None) -> Sequence[ShiftRow]: ...


class PunchRepository(Protocol):
    def exists(self, employee_id: str, kind: str, at: datetime) -> bool: ...
    def add(self, punch: PunchRow) -> None: ...
    def list(self, start: datetime, end: datetime, employee_id: str | None = None, team_id: str | None = None,
             employee_ids: Collection[str] | None = None) -> Sequence[PunchRow]:
        """Punches in [start, end), oldest first."""
        ...


class AbsenceRepository(Protocol):
    def add(self, absence: AbsenceRow) -> None:
        """Stores the absence (its id is set)."""
        ...
    def overlapping(self, start: datetime, end: datetime, employee_id: str | None = None,
                    team_id: str | None = None,
                    employee_ids: Collection[str] | None = None) -> Sequence[AbsenceRow]:
        """Absences overlapping [start, end), by start."""
        ...


class AuditRepository(Protocol):
    def add(self, entry: AuditLog) -> None: ...
    def latest(self, limit: int) -> Sequence[AuditLog]: ...


class UnitOfWork(abc.ABC):
    """One transaction: what is added or changed is kept by `commit`, dropped otherwise. Subclasses (SQL, in
    memory) set the repositories."""

    teams: TeamRepository
    rows: RowRepository
    employees: EmployeeRepository
    history: HistoryRepository
    skills: SkillRepository
    training: TrainingRepository
    costs: CostRepository
    schedules: ScheduleRepository
    punches: PunchRepository
    absences: AbsenceRepository
    audit: AuditRepository

    @abc.abstractmethod
    def publish(self, topic: str, key: str, message: Message, occurred_at: datetime | None = None) -> None:
        """Stage `message` in the outbox, in this transaction."""

    @abc.abstractmethod
    def commit(self, conflict: str | None = None) -> None:
        """Keep the changes; a unique or foreign key violation raises Conflict(`conflict`) when given (a
        concurrent request stored the same thing first)."""
