"""The unit of work and repositories of `service_layer.unit_of_work` on SQLAlchemy (SQLite or PostgreSQL)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from google.protobuf.message import Message
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from callstream_qa.adapters.orm import CoachingItemRow, ContactRow, EvaluationRow, FormRow
from callstream_qa.adapters.outbox import outbox
from callstream_qa.service_layer.unit_of_work import EvaluationFilter, UnitOfWork


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


class SqlContacts(_Repository):
    def first_segment(self, call_id: str) -> ContactRow | None:
        return self.session.scalars(select(ContactRow).where(ContactRow.call_id == call_id)
                                    .order_by(ContactRow.segment)).first()


class SqlCoaching(_Repository):
    def add(self, item: CoachingItemRow) -> None:
        self.session.add(item)

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
        self.contacts, self.coaching = SqlContacts(session), SqlCoaching(session)

    def publish(self, topic: str, key: str, message: Message, occurred_at: datetime | None = None) -> None:
        outbox.add(self.session, topic, key, message, occurred_at)

    def commit(self) -> None:
        self.session.commit()
