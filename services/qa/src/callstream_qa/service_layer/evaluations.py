"""Evaluations: created, edited as drafts, moved through their states (submit, acknowledge, dispute, review,
delete) with the event of every non-draft change in the outbox, and the coaching items a scored evaluation gives."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from callstream.qa.v1 import qa_events_pb2
from callstream_core.topics import QA_EVALUATIONS
from callstream_qa.adapters.orm import CoachingItemRow, EvaluationRow
from callstream_qa.domain.forms import Form, FormError
from callstream_qa.domain.scoring import ScoreResult, score
from callstream_qa.domain.states import Status, transition
from callstream_qa.service_layer.common import Conflict, NotFound, utc
from callstream_qa.service_layer.forms import get_form, to_form
from callstream_qa.service_layer.unit_of_work import UnitOfWork

STATUS_PB = {
    Status.DRAFT: qa_events_pb2.EVALUATION_STATUS_DRAFT,
    Status.SUBMITTED: qa_events_pb2.EVALUATION_STATUS_SUBMITTED,
    Status.ACKNOWLEDGED: qa_events_pb2.EVALUATION_STATUS_ACKNOWLEDGED,
    Status.DISPUTED: qa_events_pb2.EVALUATION_STATUS_DISPUTED,
    Status.REVIEWED: qa_events_pb2.EVALUATION_STATUS_REVIEWED,
    Status.DELETED: qa_events_pb2.EVALUATION_STATUS_DELETED,
}


def get_evaluation(uow: UnitOfWork, evaluation_id: str) -> EvaluationRow:
    row = uow.evaluations.get(evaluation_id)
    if row is None:
        raise NotFound(f"evaluation {evaluation_id!r} not found")
    return row


def _apply_score(row: EvaluationRow, result: ScoreResult) -> None:
    row.score = result.score
    row.critical_failed = result.critical_failed
    row.criteria = [
        {"criterion_id": c.criterion_id, "answer": c.answer, "points": c.points, "max_points": c.max_points,
         "critical_failed": c.critical_failed, "missed": c.missed} for c in result.criteria]


def _form_of(uow: UnitOfWork, row: EvaluationRow) -> Form:
    return to_form(get_form(uow, row.form_id, row.form_version))


@dataclass(frozen=True)
class NewEvaluation:
    call_id: str
    agent_id: str
    evaluator_id: str
    form_id: str
    answers: dict[str, str]
    form_version: int | None = None
    team_id: str = ""
    comments: str = ""
    contact_at: datetime | None = None
    submit: bool = False
    calibration_session_id: str | None = None


def create_evaluation(uow: UnitOfWork, new: NewEvaluation, now: datetime, coaching_days: int = 14) -> EvaluationRow:
    form_row = get_form(uow, new.form_id, new.form_version)
    form = to_form(form_row)
    team_id, contact_at = new.team_id, new.contact_at
    contact = uow.contacts.first_segment(new.call_id)
    if contact is not None:
        team_id = team_id or contact.team_id
        contact_at = contact_at or utc(contact.offered_at)
    row = EvaluationRow(
        evaluation_id=str(uuid.uuid4()), call_id=new.call_id, agent_id=new.agent_id, team_id=team_id,
        evaluator_id=new.evaluator_id, form_id=form.form_id, form_version=form.version, status=Status.DRAFT.value,
        answers=dict(new.answers), comments=new.comments, revision=0,
        calibration_session_id=new.calibration_session_id, contact_at=contact_at, created_at=now, updated_at=now,
    )
    _apply_score(row, score(form, new.answers, complete=False))
    uow.evaluations.add(row)
    if new.submit:
        _act(uow, row, "submit", now, coaching_days=coaching_days)
    uow.commit()
    return row


def update_draft(uow: UnitOfWork, row: EvaluationRow, answers: dict[str, str] | None, comments: str | None,
                 now: datetime) -> EvaluationRow:
    transition(Status(row.status), "update")
    if answers is not None:
        _apply_score(row, score(_form_of(uow, row), answers, complete=False))
        row.answers = dict(answers)
    if comments is not None:
        row.comments = comments
    row.updated_at = now
    uow.commit()
    return row


def act(uow: UnitOfWork, row: EvaluationRow, action: str, now: datetime, *, reason: str = "",
        answers: dict[str, str] | None = None, coaching_days: int = 14) -> EvaluationRow:
    """submit | acknowledge | dispute | review | delete; publishes an event for every non-draft change."""
    _act(uow, row, action, now, reason=reason, answers=answers, coaching_days=coaching_days)
    uow.commit()
    return row


def _act(uow: UnitOfWork, row: EvaluationRow, action: str, now: datetime, *, reason: str = "",
         answers: dict[str, str] | None = None, coaching_days: int = 14) -> None:
    before = Status(row.status)
    after = transition(before, action)
    if action == "submit":
        _apply_score(row, score(_form_of(uow, row), row.answers, complete=True))
        row.submitted_at = now
        _make_coaching(uow, row, now, coaching_days)
    elif action == "review" and answers is not None:
        _apply_score(row, score(_form_of(uow, row), answers, complete=True))
        row.answers = dict(answers)
        uow.coaching.remove_open(row.evaluation_id)
        _make_coaching(uow, row, now, coaching_days)
    elif action == "dispute":
        if not reason.strip():
            raise FormError("a dispute needs a reason")
        row.dispute_reason = reason
    if reason and action == "review":
        row.comments = (row.comments + "\n" if row.comments else "") + f"review: {reason}"
    row.status = after.value
    row.updated_at = now
    if before is not Status.DRAFT or after is Status.SUBMITTED:
        row.revision += 1
        uow.publish(QA_EVALUATIONS, row.agent_id, evaluation_event(row), now)


def evaluation_event(row: EvaluationRow) -> qa_events_pb2.EvaluationChanged:
    """The event of `row`'s current state (the outbox fills its envelope)."""
    event = qa_events_pb2.EvaluationChanged(
        agent_id=row.agent_id,
        evaluation_id=row.evaluation_id, call_id=row.call_id, evaluator_id=row.evaluator_id, team_id=row.team_id,
        form_id=row.form_id, form_version=row.form_version, status=STATUS_PB[Status(row.status)], score=row.score,
        critical_failed=row.critical_failed, revision=row.revision,
        calibration=row.calibration_session_id is not None,
    )
    for c in row.criteria:
        event.criteria.add(criterion_id=c["criterion_id"], answer=c["answer"], points=c["points"],
                           max_points=c["max_points"], critical_failed=c["critical_failed"])
    contact_at = utc(row.contact_at)
    if contact_at is not None:
        event.contact_at.FromDatetime(contact_at)
    return event


# -- coaching items of a submitted or reviewed evaluation ---------------------------------------------------------
def _make_coaching(uow: UnitOfWork, row: EvaluationRow, now: datetime, days: int) -> None:
    if row.calibration_session_id is not None:
        return  # calibration scores judge the evaluators, not the agent
    labels = _form_of(uow, row).criteria
    for c in row.criteria:
        if c["missed"]:
            label = labels[c["criterion_id"]].label or c["criterion_id"]
            uow.coaching.add(CoachingItemRow(
                item_id=str(uuid.uuid4()), evaluation_id=row.evaluation_id, agent_id=row.agent_id,
                team_id=row.team_id, criterion_id=c["criterion_id"],
                note=f"missed: {label}" + (" (critical)" if c["critical_failed"] else ""),
                due_date=(now + timedelta(days=days)).date(), created_at=now))


def get_coaching_item(uow: UnitOfWork, item_id: str) -> CoachingItemRow:
    row = uow.coaching.get(item_id)
    if row is None:
        raise NotFound(f"coaching item {item_id!r} not found")
    return row


def acknowledge_coaching(uow: UnitOfWork, item: CoachingItemRow, now: datetime) -> CoachingItemRow:
    """The agent has read the item (once)."""
    if item.acknowledged_at is not None:
        raise Conflict("coaching item already acknowledged")
    item.acknowledged_at = now
    uow.commit()
    return item
