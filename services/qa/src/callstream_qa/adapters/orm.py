"""SQLAlchemy tables of the QA service (the schema is created by the alembic migrations in `migrations/`)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from callstream_core.outbox import OutboxColumns


class Base(DeclarativeBase):
    pass


class FormRow(Base):
    __tablename__ = "qa_forms"
    form_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # {"sections": [{"section_id", "title", "criteria": [{criterion_id, label, weight, scale, critical, ...}]}]}
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CalibrationSessionRow(Base):
    __tablename__ = "qa_calibration_sessions"
    session_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    call_id: Mapped[str] = mapped_column(String(128))
    agent_id: Mapped[str] = mapped_column(String(64))
    form_id: Mapped[str] = mapped_column(String(64))
    form_version: Mapped[int] = mapped_column(Integer)
    reference_evaluator: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class EvaluationRow(Base):
    __tablename__ = "qa_evaluations"
    evaluation_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    call_id: Mapped[str] = mapped_column(String(128), index=True)
    agent_id: Mapped[str] = mapped_column(String(64), index=True)
    team_id: Mapped[str] = mapped_column(String(64), index=True, default="")
    evaluator_id: Mapped[str] = mapped_column(String(64))
    form_id: Mapped[str] = mapped_column(String(64))
    form_version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    answers: Mapped[dict[str, str]] = mapped_column(JSON)
    comments: Mapped[str] = mapped_column(Text, default="")
    score: Mapped[float] = mapped_column(Float, default=0.0)
    critical_failed: Mapped[bool] = mapped_column(Boolean, default=False)
    criteria: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    revision: Mapped[int] = mapped_column(Integer, default=0)
    calibration_session_id: Mapped[str | None] = mapped_column(
        ForeignKey("qa_calibration_sessions.session_id"), nullable=True, index=True)
    dispute_reason: Mapped[str] = mapped_column(Text, default="")
    contact_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    __table_args__ = (Index("ix_qa_evaluations_form", "form_id", "form_version"),)


class CoachingItemRow(Base):
    __tablename__ = "qa_coaching_items"
    item_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    evaluation_id: Mapped[str] = mapped_column(ForeignKey("qa_evaluations.evaluation_id"), index=True)
    agent_id: Mapped[str] = mapped_column(String(64), index=True)
    team_id: Mapped[str] = mapped_column(String(64), default="")
    criterion_id: Mapped[str] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(Text, default="")
    due_date: Mapped[date] = mapped_column(Date)
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ContactRow(Base):
    """Contacts from cc.contacts.v1 (one row per call_id+segment, the highest version kept)."""

    __tablename__ = "qa_contacts"
    call_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    segment: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)
    agent_id: Mapped[str] = mapped_column(String(64), index=True)
    team_id: Mapped[str] = mapped_column(String(64), default="")
    queue_id: Mapped[str] = mapped_column(String(64), default="")
    call_type: Mapped[str] = mapped_column(String(64), default="")
    outcome: Mapped[int] = mapped_column(Integer, default=0)
    talk_s: Mapped[float] = mapped_column(Float, default=0.0)
    transfer_kind: Mapped[str] = mapped_column(String(16), default="")
    answered: Mapped[bool] = mapped_column(Boolean, default=False)
    offered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class SamplingPlanRow(Base):
    __tablename__ = "qa_sampling_plans"
    plan_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)  # exclusive
    per_agent: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(BigInteger)
    long_call_s: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PlanItemRow(Base):
    __tablename__ = "qa_plan_items"
    plan_id: Mapped[str] = mapped_column(ForeignKey("qa_sampling_plans.plan_id"), primary_key=True)
    call_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    segment: Mapped[int] = mapped_column(Integer, primary_key=True)
    agent_id: Mapped[str] = mapped_column(String(64), index=True)
    stratum: Mapped[str] = mapped_column(String(200))


class OutboxRow(OutboxColumns, Base):
    """Transactional outbox (callstream_core.outbox): written with the change, published by the relay, marked
    sent after Kafka confirmed."""

    __tablename__ = "qa_outbox"
    __table_args__ = (UniqueConstraint("event_id", name="uq_qa_outbox_event_id"),)
