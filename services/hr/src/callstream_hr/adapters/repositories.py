"""The unit of work and repositories of `service_layer.unit_of_work` on SQLAlchemy (SQLite or PostgreSQL)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import date, datetime
from types import TracebackType
from typing import Any, Literal

from google.protobuf.message import Message
from sqlalchemy import Select, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from callstream_hr.adapters import models as m
from callstream_hr.adapters.outbox import outbox
from callstream_hr.service_layer.errors import Conflict
from callstream_hr.service_layer.unit_of_work import UnitOfWork


class _Repository:
    def __init__(self, session: Session) -> None:
        self.session = session


def _in_team(column: Any, team_id: str) -> Any:
    """`column` (an employee id) belongs to a member of `team_id`."""
    return column.in_(select(m.Employee.id).where(m.Employee.team_id == team_id))


class SqlTeams(_Repository):
    def get(self, team_id: str, *, for_update: bool = False) -> m.Team | None:
        return self.session.get(m.Team, team_id, with_for_update=for_update)

    def add(self, team: m.Team) -> None:
        self.session.add(team)

    def list(self) -> Sequence[m.Team]:
        return self.session.scalars(select(m.Team).order_by(m.Team.id)).all()


class SqlRows(_Repository):
    def get(self, row_id: str) -> m.Row | None:
        return self.session.get(m.Row, row_id)

    def add(self, row: m.Row) -> None:
        self.session.add(row)

    def list(self, team_id: str | None = None) -> Sequence[m.Row]:
        query = select(m.Row).order_by(m.Row.team_id, m.Row.id)
        if team_id:
            query = query.where(m.Row.team_id == team_id)
        return self.session.scalars(query).all()


class SqlEmployees(_Repository):
    def get(self, employee_id: str, *, for_update: bool = False) -> m.Employee | None:
        return self.session.get(m.Employee, employee_id, with_for_update=for_update)

    def add(self, employee: m.Employee) -> None:
        self.session.add(employee)
        self.session.flush()  # the employee row first: history rows refer to it

    def list(self, team_id: str | None = None, role: str | None = None,
             active: bool | None = None) -> Sequence[m.Employee]:
        query = select(m.Employee).order_by(m.Employee.id)
        if team_id:
            query = query.where(m.Employee.team_id == team_id)
        if role:
            query = query.where(m.Employee.role == role)
        if active is not None:
            query = query.where(m.Employee.left_on.is_(None) if active else m.Employee.left_on.is_not(None))
        return self.session.scalars(query).all()

    def hired_before(self, day: date) -> Sequence[m.Employee]:
        return self.session.scalars(select(m.Employee).where(m.Employee.hired_on < day)).all()

    def ids_in_team(self, team_id: str) -> set[str]:
        return set(self.session.scalars(select(m.Employee.id).where(m.Employee.team_id == team_id)).all())

    def known(self, employee_ids: Collection[str]) -> set[str]:
        return set(self.session.scalars(select(m.Employee.id).where(m.Employee.id.in_(employee_ids))).all())

    def agents_per(self, placement: Literal["team_id", "row_id"]) -> dict[str, int]:
        column = m.Employee.team_id if placement == "team_id" else m.Employee.row_id
        return {key: n for key, n in self.session.execute(select(column, func.count()).where(
            m.Employee.left_on.is_(None), m.Employee.role == "agent", column.is_not(None)).group_by(column))
                if key is not None}


class SqlHistory(_Repository):
    def add(self, record: m.EmploymentRecord) -> None:
        self.session.add(record)

    def last_change(self, employee_id: str) -> date | None:
        return self.session.scalar(select(func.max(m.EmploymentRecord.effective_on))
                                   .where(m.EmploymentRecord.employee_id == employee_id))

    def of(self, employee_id: str) -> Sequence[m.EmploymentRecord]:
        return self.session.scalars(select(m.EmploymentRecord).where(m.EmploymentRecord.employee_id == employee_id)
                                    .order_by(m.EmploymentRecord.effective_on, m.EmploymentRecord.id)).all()

    def of_hired_before(self, day: date) -> Sequence[m.EmploymentRecord]:
        return self.session.scalars(select(m.EmploymentRecord).where(m.EmploymentRecord.employee_id.in_(
            select(m.Employee.id).where(m.Employee.hired_on < day)))).all()


class SqlSkills(_Repository):
    def of(self, employee_id: str) -> Sequence[m.Skill]:
        return self.session.scalars(select(m.Skill).where(m.Skill.employee_id == employee_id)).all()

    def replace(self, employee_id: str, skills: Sequence[m.Skill]) -> None:
        self.session.execute(delete(m.Skill).where(m.Skill.employee_id == employee_id))
        self.session.add_all(skills)


class SqlTraining(_Repository):
    def add_session(self, session: m.TrainingSession, attendance: Sequence[m.TrainingAttendance]) -> None:
        self.session.add(session)
        self.session.flush()  # the session's id
        for a in attendance:
            a.session_id = session.id
        self.session.add_all(attendance)

    def add_exam(self, exam: m.Exam) -> None:
        self.session.add(exam)
        self.session.flush()  # the exam's id

    def sessions(self, start: datetime | None, end: datetime | None,
                 session_type: str | None) -> Sequence[m.TrainingSession]:
        query = select(m.TrainingSession).order_by(m.TrainingSession.starts_at, m.TrainingSession.id)
        if start is not None:
            query = query.where(m.TrainingSession.starts_at >= start)
        if end is not None:
            query = query.where(m.TrainingSession.starts_at < end)
        if session_type:
            query = query.where(m.TrainingSession.type == session_type)
        return self.session.scalars(query).all()

    def attendance_of(self, session_ids: Collection[int]) -> Sequence[m.TrainingAttendance]:
        return self.session.scalars(select(m.TrainingAttendance).where(m.TrainingAttendance.session_id.in_(session_ids))
                                    .order_by(m.TrainingAttendance.employee_id)).all()

    def exams(self, employee_id: str | None = None, team_id: str | None = None, start: datetime | None = None,
              end: datetime | None = None) -> Sequence[m.Exam]:
        query = select(m.Exam).order_by(m.Exam.taken_at, m.Exam.id)
        if employee_id:
            query = query.where(m.Exam.employee_id == employee_id)
        if team_id:
            query = query.where(_in_team(m.Exam.employee_id, team_id))
        if start is not None:
            query = query.where(m.Exam.taken_at >= start)
        if end is not None:
            query = query.where(m.Exam.taken_at < end)
        return self.session.scalars(query).all()


class SqlCosts(_Repository):
    def get(self, entry_id: str) -> m.CostEntryRow | None:
        return self.session.get(m.CostEntryRow, entry_id)

    def add(self, entry: m.CostEntryRow) -> None:
        self.session.add(entry)

    def list(self, cost_center_id: str | None) -> Sequence[m.CostEntryRow]:
        query = select(m.CostEntryRow).order_by(m.CostEntryRow.period_start, m.CostEntryRow.entry_id)
        if cost_center_id:
            query = query.where(m.CostEntryRow.cost_center_id == cost_center_id)
        return self.session.scalars(query).all()


class SqlSchedules(_Repository):
    def get(self, schedule_id: str, *, for_update: bool = False) -> m.Schedule | None:
        return self.session.get(m.Schedule, schedule_id, with_for_update=for_update)

    def add(self, schedule: m.Schedule) -> None:
        self.session.add(schedule)

    def list(self, start: datetime | None, end: datetime | None) -> Sequence[m.Schedule]:
        query = select(m.Schedule).order_by(m.Schedule.period_start, m.Schedule.schedule_id)
        if start is not None:
            query = query.where(m.Schedule.period_end > start)
        if end is not None:
            query = query.where(m.Schedule.period_start < end)
        return self.session.scalars(query).all()

    def shift_counts(self, schedule_ids: Collection[str]) -> dict[str, int]:
        return {key: n for key, n in self.session.execute(select(m.ShiftRow.schedule_id, func.count()).where(
            m.ShiftRow.schedule_id.in_(schedule_ids)).group_by(m.ShiftRow.schedule_id))}

    def shifts_of(self, schedule_id: str, team_id: str | None = None) -> Sequence[m.ShiftRow]:
        query = select(m.ShiftRow).where(m.ShiftRow.schedule_id == schedule_id).order_by(m.ShiftRow.start,
                                                                                          m.ShiftRow.shift_id)
        if team_id:
            query = query.where(m.ShiftRow.team_id == team_id)
        return self.session.scalars(query).all()

    def replace_shifts(self, schedule_id: str, shifts: Sequence[m.ShiftRow]) -> Sequence[str]:
        self.session.execute(delete(m.ShiftRow).where(m.ShiftRow.schedule_id == schedule_id))
        self.session.flush()  # the schedule row (a new one) and the deletion, before the check below
        clash = self.session.scalars(select(m.ShiftRow.shift_id).where(
            m.ShiftRow.shift_id.in_([sh.shift_id for sh in shifts]))).all()
        if clash:
            return clash
        self.session.add_all(shifts)
        return []

    def shifts_starting(self, start: datetime, end: datetime, team_id: str | None) -> Sequence[m.ShiftRow]:
        query = select(m.ShiftRow).where(m.ShiftRow.start >= start, m.ShiftRow.start < end)
        if team_id:
            query = query.where(m.ShiftRow.team_id == team_id)
        return self.session.scalars(query).all()


def _of_people(query: Select[Any], column: Any, employee_id: str | None, team_id: str | None,
               employee_ids: Collection[str] | None) -> Select[Any]:
    if employee_id:
        query = query.where(column == employee_id)
    if team_id:
        query = query.where(_in_team(column, team_id))
    if employee_ids is not None:
        query = query.where(column.in_(employee_ids))
    return query


class SqlPunches(_Repository):
    def exists(self, employee_id: str, kind: str, at: datetime) -> bool:
        return self.session.scalar(select(func.count()).select_from(m.PunchRow).where(
            m.PunchRow.employee_id == employee_id, m.PunchRow.kind == kind, m.PunchRow.at == at)) != 0

    def add(self, punch: m.PunchRow) -> None:
        self.session.add(punch)

    def list(self, start: datetime, end: datetime, employee_id: str | None = None, team_id: str | None = None,
             employee_ids: Collection[str] | None = None) -> Sequence[m.PunchRow]:
        query = select(m.PunchRow).where(m.PunchRow.at >= start, m.PunchRow.at < end).order_by(m.PunchRow.at,
                                                                                                m.PunchRow.id)
        return self.session.scalars(_of_people(query, m.PunchRow.employee_id, employee_id, team_id,
                                               employee_ids)).all()


class SqlAbsences(_Repository):
    def add(self, absence: m.AbsenceRow) -> None:
        self.session.add(absence)
        self.session.flush()  # the absence's id (its event names it)

    def overlapping(self, start: datetime, end: datetime, employee_id: str | None = None,
                    team_id: str | None = None,
                    employee_ids: Collection[str] | None = None) -> Sequence[m.AbsenceRow]:
        query = select(m.AbsenceRow).where(m.AbsenceRow.end > start, m.AbsenceRow.start < end).order_by(
            m.AbsenceRow.start, m.AbsenceRow.id)
        return self.session.scalars(_of_people(query, m.AbsenceRow.employee_id, employee_id, team_id,
                                               employee_ids)).all()


class SqlAudit(_Repository):
    def add(self, entry: m.AuditLog) -> None:
        self.session.add(entry)

    def latest(self, limit: int) -> Sequence[m.AuditLog]:
        return self.session.scalars(select(m.AuditLog).order_by(m.AuditLog.id.desc()).limit(limit)).all()


class SqlUnitOfWork(UnitOfWork):
    """One session: a transaction; what is not committed is rolled back when the block ends."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def __enter__(self) -> SqlUnitOfWork:
        self.session = session = self._sessions()
        self.teams, self.rows, self.employees = SqlTeams(session), SqlRows(session), SqlEmployees(session)
        self.history, self.skills, self.training = SqlHistory(session), SqlSkills(session), SqlTraining(session)
        self.costs, self.schedules, self.punches = SqlCosts(session), SqlSchedules(session), SqlPunches(session)
        self.absences, self.audit = SqlAbsences(session), SqlAudit(session)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.session.close()  # rolls back what was not committed

    def publish(self, topic: str, key: str, message: Message, occurred_at: datetime | None = None) -> None:
        outbox.add(self.session, topic, key, message, occurred_at)

    def commit(self, conflict: str | None = None) -> None:
        try:
            self.session.commit()
        except IntegrityError as exc:
            self.session.rollback()
            if conflict is None:
                raise
            raise Conflict(conflict) from exc

