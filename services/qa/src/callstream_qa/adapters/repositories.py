"""The unit of work and repositories of `service_layer.unit_of_work` on SQLAlchemy (SQLite or PostgreSQL)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from google.protobuf.message import Message
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from callstream_qa.adapters.orm import (
    CalibrationSessionRow,
    CoachingItemRow,
    ContactRow,
    EvaluationRow,
    FormRow,
    PlanItemRow,
    SamplingPlanRow,
)
from callstream_qa.adapters.outbox import outbox
from callstream_qa.domain.states import SCORED
from callstream_qa.service_layer.unit_of_work import CoachingFilter, EvaluationFilter, UnitOfWork


class _Repository:
    def __init__(self, session: Session) -> None:
        self.session = session


class SqlForms(_Repository):
    def get(self, form_id: str, version: int) -> FormRow | None:
        return self.session.get(FormRow, (form_id, version))

    def latest(self, form_id: str) -> FormRow | None:
        return self.session.scalars(select(FormRow).where(FormRow.form_id == form_id)
                                    .order_by(FormRow.version.desc()).limit(1)).first()

    def add(self, form: FormRow) -> None:
        self.session.add(form)

    def list(self) -> Sequence[FormRow]:
        return self.session.scalars(select(FormRow).order_by(FormRow.form_id, FormRow.version)).all()

    def in_use(self, form_id: str, version: int) -> bool:
        used = self.session.scalar(select(func.count()).select_from(EvaluationRow).where(
            EvaluationRow.form_id == form_id, EvaluationRow.form_version == version))
        return bool(used)


class SqlEvaluations(_Repository):
    def get(self, evaluation_id: str) -> EvaluationRow | None:
        return self.session.get(EvaluationRow, evaluation_id)

    def add(self, evaluation: EvaluationRow) -> None:
        self.session.add(evaluation)
        self.session.flush()  # the evaluation row first: coaching items refer to it

    def list(self, where: EvaluationFilter) -> Sequence[EvaluationRow]:
        query = select(EvaluationRow).where(EvaluationRow.calibration_session_id.is_(None))
        if where.seen_by_agent is not None:
            query = query.where(EvaluationRow.agent_id == where.seen_by_agent,
                                EvaluationRow.status != "draft", EvaluationRow.status != "deleted")
        if where.seen_by_team is not None:
            query = query.where(EvaluationRow.team_id == where.seen_by_team)
        if where.agent_id is not None:
            query = query.where(EvaluationRow.agent_id == where.agent_id)
        if where.team_id is not None:
            query = query.where(EvaluationRow.team_id == where.team_id)
        if where.status is not None:
            query = query.where(EvaluationRow.status == where.status)
        return self.session.scalars(query.order_by(EvaluationRow.created_at)).all()

    def of_calibration(self, session_id: str) -> Sequence[EvaluationRow]:
        return self.session.scalars(select(EvaluationRow).where(EvaluationRow.calibration_session_id == session_id)
                                    .order_by(EvaluationRow.updated_at)).all()

    def scored_calls(self) -> set[tuple[str, str]]:
        return {(a, c) for a, c in self.session.execute(select(EvaluationRow.agent_id, EvaluationRow.call_id).where(
            EvaluationRow.status.in_([s.value for s in SCORED]), EvaluationRow.calibration_session_id.is_(None)))}

    def scored_submitted(self, start: datetime, end: datetime) -> Sequence[EvaluationRow]:
        return self.session.scalars(select(EvaluationRow).where(
            EvaluationRow.status.in_([s.value for s in SCORED]), EvaluationRow.calibration_session_id.is_(None),
            EvaluationRow.submitted_at >= start, EvaluationRow.submitted_at < end)).all()


class SqlCalibrations(_Repository):
    def get(self, session_id: str) -> CalibrationSessionRow | None:
        return self.session.get(CalibrationSessionRow, session_id)

    def add(self, session: CalibrationSessionRow) -> None:
        self.session.add(session)

    def created(self, start: datetime, end: datetime) -> Sequence[CalibrationSessionRow]:
        return self.session.scalars(select(CalibrationSessionRow).where(
            CalibrationSessionRow.created_at >= start, CalibrationSessionRow.created_at < end)).all()


class SqlPlans(_Repository):
    def get(self, plan_id: str) -> SamplingPlanRow | None:
        return self.session.get(SamplingPlanRow, plan_id)

    def add(self, plan: SamplingPlanRow, items: Sequence[PlanItemRow]) -> None:
        self.session.add(plan)
        self.session.flush()  # the plan row first: its items refer to it
        self.session.add_all(items)
        self.session.flush()

    def items(self, plan_id: str) -> Sequence[PlanItemRow]:
        return self.session.scalars(select(PlanItemRow).where(PlanItemRow.plan_id == plan_id)
                                    .order_by(PlanItemRow.agent_id, PlanItemRow.call_id, PlanItemRow.segment)).all()

    def starting(self, start: date, end: date) -> Sequence[SamplingPlanRow]:
        return self.session.scalars(select(SamplingPlanRow).where(
            SamplingPlanRow.period_start >= start, SamplingPlanRow.period_start < end)).all()


class SqlContacts(_Repository):
    def first_segment(self, call_id: str) -> ContactRow | None:
        return self.session.scalars(select(ContactRow).where(ContactRow.call_id == call_id)
                                    .order_by(ContactRow.segment)).first()

    def offered(self, start: datetime, end: datetime) -> Sequence[ContactRow]:
        return self.session.scalars(select(ContactRow).where(
            ContactRow.offered_at >= start, ContactRow.offered_at < end, ContactRow.agent_id != "")).all()

    def calls_of_team(self, team_id: str) -> set[str]:
        return set(self.session.scalars(select(ContactRow.call_id).where(ContactRow.team_id == team_id)))


class SqlCoaching(_Repository):
    def get(self, item_id: str) -> CoachingItemRow | None:
        return self.session.get(CoachingItemRow, item_id)

    def add(self, item: CoachingItemRow) -> None:
        self.session.add(item)

    def list(self, where: CoachingFilter) -> Sequence[CoachingItemRow]:
        query = select(CoachingItemRow)
        if where.seen_by_agent is not None:
            query = query.where(CoachingItemRow.agent_id == where.seen_by_agent)
        if where.seen_by_team is not None:
            query = query.where(CoachingItemRow.team_id == where.seen_by_team)
        if where.agent_id is not None:
            query = query.where(CoachingItemRow.agent_id == where.agent_id)
        if where.open_only:
            query = query.where(CoachingItemRow.acknowledged_at.is_(None))
        return self.session.scalars(query.order_by(CoachingItemRow.due_date, CoachingItemRow.criterion_id)).all()

    def remove_open(self, evaluation_id: str) -> None:
        for item in list(self.session.scalars(select(CoachingItemRow).where(
                CoachingItemRow.evaluation_id == evaluation_id, CoachingItemRow.acknowledged_at.is_(None)))):
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
