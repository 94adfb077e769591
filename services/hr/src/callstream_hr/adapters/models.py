"""SQLAlchemy tables of the HR service (the schema is created by the alembic migrations in `migrations/`)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from callstream_core.outbox import OutboxColumns


class Base(DeclarativeBase):
    pass


class Team(Base):
    __tablename__ = "teams"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    lead_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


class Row(Base):
    __tablename__ = "team_rows"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id"))
    senior_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


class Employee(Base):
    __tablename__ = "employees"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    full_name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(200), nullable=True)
    phone: Mapped[str | None] = mapped_column(String(50), nullable=True)
    role: Mapped[str] = mapped_column(String(32))
    team_id: Mapped[str | None] = mapped_column(ForeignKey("teams.id"), nullable=True)
    row_id: Mapped[str | None] = mapped_column(ForeignKey("team_rows.id"), nullable=True)
    fte: Mapped[float] = mapped_column(Float, default=1.0)
    hired_on: Mapped[date] = mapped_column(Date)
    left_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    exit_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    voluntary: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    exit_interview: Mapped[str | None] = mapped_column(Text, nullable=True)
    # team lead at the time of leaving (attrition by team lead)
    exit_team_lead_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    training_stage: Mapped[str | None] = mapped_column(String(32), nullable=True)


class EmploymentRecord(Base):
    """Role, team and row of an employee from `effective_on` on: one row at hire, one per change, one at
    leaving (history kept; `employees` holds the current state)."""

    __tablename__ = "employment_history"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    employee_id: Mapped[str] = mapped_column(ForeignKey("employees.id"), index=True)
    effective_on: Mapped[date] = mapped_column(Date)
    # hired, role, team, role+team, left
    change: Mapped[str] = mapped_column(String(16))
    role: Mapped[str] = mapped_column(String(32))
    team_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    row_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    team_lead_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    recorded_by: Mapped[str] = mapped_column(String(100))


class Skill(Base):
    __tablename__ = "skills"
    employee_id: Mapped[str] = mapped_column(ForeignKey("employees.id"), primary_key=True)
    skill: Mapped[str] = mapped_column(String(64), primary_key=True)
    proficiency: Mapped[int] = mapped_column(Integer)


class TrainingSession(Base):
    __tablename__ = "training_sessions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    type: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(200))
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TrainingAttendance(Base):
    __tablename__ = "training_attendance"
    session_id: Mapped[int] = mapped_column(ForeignKey("training_sessions.id"), primary_key=True)
    employee_id: Mapped[str] = mapped_column(ForeignKey("employees.id"), primary_key=True)
    attended: Mapped[bool] = mapped_column(Boolean)


class Exam(Base):
    __tablename__ = "exams"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    employee_id: Mapped[str] = mapped_column(ForeignKey("employees.id"))
    name: Mapped[str] = mapped_column(String(200))
    taken_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    score: Mapped[float] = mapped_column(Float)
    pass_mark: Mapped[float] = mapped_column(Float)


class CostEntryRow(Base):
    __tablename__ = "cost_entries"
    entry_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    cost_center_id: Mapped[str] = mapped_column(String(64))
    period_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    period_end: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    category: Mapped[str] = mapped_column(String(64))


class Schedule(Base):
    __tablename__ = "schedules"
    schedule_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    period_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    period_end: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    published_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ShiftRow(Base):
    """Shifts of the current version of a schedule (a new version replaces them)."""

    __tablename__ = "shifts"
    shift_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    schedule_id: Mapped[str] = mapped_column(ForeignKey("schedules.schedule_id"))
    employee_id: Mapped[str] = mapped_column(ForeignKey("employees.id"))
    team_id: Mapped[str] = mapped_column(String(64))
    start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    end: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    breaks: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)


class PunchRow(Base):
    __tablename__ = "punches"
    __table_args__ = (UniqueConstraint("employee_id", "at", "kind", name="uq_punch"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    employee_id: Mapped[str] = mapped_column(ForeignKey("employees.id"))
    kind: Mapped[str] = mapped_column(String(3))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    device: Mapped[str] = mapped_column(String(64), default="")


class AbsenceRow(Base):
    __tablename__ = "absences"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    employee_id: Mapped[str] = mapped_column(ForeignKey("employees.id"))
    start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    end: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str] = mapped_column(String(16))


class Outbox(OutboxColumns, Base):
    """Transactional outbox (callstream_core.outbox): written with the change it describes; the relay publishes
    then sets sent_at. HR's table has shorter topic and key columns and a unique event_id."""

    __tablename__ = "outbox"
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    topic: Mapped[str] = mapped_column(String(100))
    key: Mapped[str] = mapped_column(String(100))


class AuditLog(Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    subject: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(200))
