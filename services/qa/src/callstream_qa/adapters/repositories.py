"""The unit of work and repositories of `service_layer.unit_of_work` on SQLAlchemy (SQLite or PostgreSQL)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from google.protobuf.message import Message
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from callstream_qa.adapters import orm as m
from callstream_qa.adapters.outbox import outbox
from callstream_qa.domain.states import SCORED
from callstream_qa.service_layer.unit_of_work import CoachingFilter, EvaluationFilter, UnitOfWork


def _equal(query: Select[Any], *conditions: tuple[Any, str | None]) -> Select[Any]:
    """`query` narrowed to column == value for each (column, value) whose value is given."""
    for column, value in conditions:
        if value is not None:
            query = query.where(column == value)
    return query


class _Repository:
    def __init__(self, session: Session) -> None:
        self.session = session


class SqlForms(_Repository):
    def get(self, form_id: str, version: int) -> m.FormRow | None:
        return self.session.get(m.FormRow, (form_id, version))

    def latest(self, form_id: str) -> m.FormRow | None:
        return self.session.scalars(select(m.FormRow).where(m.FormRow.form_id == form_id)
                                    .order_by(m.FormRow.version.desc()).limit(1)).first()

    def add(self, form: m.FormRow) -> None:
        self.session.add(form)

    def list(self) -> Sequence[m.FormRow]:
        return self.session.scalars(select(m.FormRow).order_by(m.FormRow.form_id, m.FormRow.version)).all()

    def in_use(self, form_id: str, version: int) -> bool:
        used = self.session.scalar(select(func.count()).select_from(m.EvaluationRow).where(
            m.EvaluationRow.form_id == form_id, m.EvaluationRow.form_version == version))
        return bool(used)


class SqlEvaluations(_Repository):
    def get(self, evaluation_id: str) -> m.EvaluationRow | None:
        return self.session.get(m.EvaluationRow, evaluation_id)

    def add(self, evaluation: m.EvaluationRow) -> None:
        self.session.add(evaluation)
        self.session.flush()  # the evaluation row first: coaching items refer to it

    def list(self, where: EvaluationFilter) -> Sequence[m.EvaluationRow]:
        row = m.EvaluationRow
        query = _equal(select(row).where(row.calibration_session_id.is_(None)), (row.agent_id, where.seen_by_agent),
                       (row.team_id, where.seen_by_team), (row.agent_id, where.agent_id),
                       (row.team_id, where.team_id), (row.status, where.status))
        if where.seen_by_agent is not None:  # an agent sees no drafts, nor deleted ones
            query = query.where(row.status != "draft", row.status != "deleted")
        return self.session.scalars(query.order_by(m.EvaluationRow.created_at)).all()

    def of_calibration(self, session_id: str) -> Sequence[m.EvaluationRow]:
        return self.session.scalars(select(m.EvaluationRow).where(m.EvaluationRow.calibration_session_id == session_id)
                                    .order_by(m.EvaluationRow.updated_at)).all()

    def scored_calls(self) -> set[tuple[str, str]]:
        return {(a, c) for a, c in self.session.execute(select(m.EvaluationRow.agent_id, m.EvaluationRow.call_id).where(
            m.EvaluationRow.status.in_([s.value for s in SCORED]), m.EvaluationRow.calibration_session_id.is_(None)))}

    def scored_submitted(self, start: datetime, end: datetime) -> Sequence[m.EvaluationRow]:
        return self.session.scalars(select(m.EvaluationRow).where(
            m.EvaluationRow.status.in_([s.value for s in SCORED]), m.EvaluationRow.calibration_session_id.is_(None),
            m.EvaluationRow.submitted_at >= start, m.EvaluationRow.submitted_at < end)).all()


class SqlCalibrations(_Repository):
    def get(self, session_id: str) -> m.CalibrationSessionRow | None:
        return self.session.get(m.CalibrationSessionRow, session_id)

    def add(self, session: m.CalibrationSessionRow) -> None:
        self.session.add(session)

    def created(self, start: datetime, end: datetime) -> Sequence[m.CalibrationSessionRow]:
        return self.session.scalars(select(m.CalibrationSessionRow).where(
            m.CalibrationSessionRow.created_at >= start, m.CalibrationSessionRow.created_at < end)).all()


class SqlPlans(_Repository):
    def get(self, plan_id: str) -> m.SamplingPlanRow | None:
        return self.session.get(m.SamplingPlanRow, plan_id)

    def add(self, plan: m.SamplingPlanRow, items: Sequence[m.PlanItemRow]) -> None:
        self.session.add(plan)
        self.session.flush()  # the plan row first: its items refer to it
        self.session.add_all(items)
        self.session.flush()

    def items(self, plan_id: str) -> Sequence[m.PlanItemRow]:
        item = m.PlanItemRow
        return self.session.scalars(select(item).where(item.plan_id == plan_id)
                                    .order_by(item.agent_id, item.call_id, item.segment)).all()

    def starting(self, start: date, end: date) -> Sequence[m.SamplingPlanRow]:
        return self.session.scalars(select(m.SamplingPlanRow).where(
            m.SamplingPlanRow.period_start >= start, m.SamplingPlanRow.period_start < end)).all()


class SqlContacts(_Repository):
    def first_segment(self, call_id: str) -> m.ContactRow | None:
        return self.session.scalars(select(m.ContactRow).where(m.ContactRow.call_id == call_id)
                                    .order_by(m.ContactRow.segment)).first()

    def offered(self, start: datetime, end: datetime) -> Sequence[m.ContactRow]:
        return self.session.scalars(select(m.ContactRow).where(
            m.ContactRow.offered_at >= start, m.ContactRow.offered_at < end, m.ContactRow.agent_id != "")).all()

    def calls_of_team(self, team_id: str) -> set[str]:
        return set(self.session.scalars(select(m.ContactRow.call_id).where(m.ContactRow.team_id == team_id)))


class SqlCoaching(_Repository):
    def get(self, item_id: str) -> m.CoachingItemRow | None:
        return self.session.get(m.CoachingItemRow, item_id)

    def add(self, item: m.CoachingItemRow) -> None:
        self.session.add(item)

    def list(self, where: CoachingFilter) -> Sequence[m.CoachingItemRow]:
        item = m.CoachingItemRow
        query = _equal(select(item), (item.agent_id, where.seen_by_agent), (item.team_id, where.seen_by_team),
                       (item.agent_id, where.agent_id))
        if where.open_only:
            query = query.where(m.CoachingItemRow.acknowledged_at.is_(None))
        return self.session.scalars(query.order_by(m.CoachingItemRow.due_date, m.CoachingItemRow.criterion_id)).all()

    def remove_open(self, evaluation_id: str) -> None:
        for item in list(self.session.scalars(select(m.CoachingItemRow).where(
                m.CoachingItemRow.evaluation_id == evaluation_id, m.CoachingItemRow.acknowledged_at.is_(None)))):
            self.session.delete(item)
        self.session.flush()  # the old items go before the new ones are added


class SqlUnitOfWork(UnitOfWork):
    """The repositories on `session`, whose owner (the request, a worker) closes it: what is not committed
    is rolled back then."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.forms, self.evaluations = SqlForms(session), SqlEvaluations(session)
        self.calibrations, self.plans = SqlCalibrations(session), SqlPlans(session)
        self.contacts, self.coaching = SqlContacts(session), SqlCoaching(session)

    def publish(self, topic: str, key: str, message: Message, occurred_at: datetime | None = None) -> None:
        outbox.add(self.session, topic, key, message, occurred_at)

    def commit(self) -> None:
        self.session.commit()
