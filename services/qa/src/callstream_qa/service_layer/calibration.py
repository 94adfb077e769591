"""Calibration sessions: several evaluators score the same call; their deviation from the reference (or the mean)."""

from __future__ import annotations

import uuid
from datetime import datetime

from callstream_qa.adapters.orm import CalibrationSessionRow
from callstream_qa.domain.calibration import CalibrationStats, calibration_stats
from callstream_qa.domain.states import SCORED, Status
from callstream_qa.service_layer import evaluations
from callstream_qa.service_layer.common import Conflict, NotFound
from callstream_qa.service_layer.forms import get_form
from callstream_qa.service_layer.unit_of_work import UnitOfWork


def get_session_row(uow: UnitOfWork, session_id: str) -> CalibrationSessionRow:
    row = uow.calibrations.get(session_id)
    if row is None:
        raise NotFound(f"calibration session {session_id!r} not found")
    return row


def open_session(uow: UnitOfWork, *, call_id: str, agent_id: str, form_id: str, form_version: int | None,
                 reference_evaluator: str | None, now: datetime) -> CalibrationSessionRow:
    """A session on the form's version (the newest when none is given)."""
    form = get_form(uow, form_id, form_version)
    row = CalibrationSessionRow(session_id=uuid.uuid4().hex, call_id=call_id, agent_id=agent_id,
                                form_id=form.form_id, form_version=form.version,
                                reference_evaluator=reference_evaluator, created_at=now)
    uow.calibrations.add(row)
    uow.commit()
    return row


def add_score(uow: UnitOfWork, session_id: str, evaluator_id: str, answers: dict[str, str], comments: str,
              now: datetime) -> None:
    """The evaluator's submitted score of the session's call; one per evaluator."""
    cal = get_session_row(uow, session_id)
    if any(ev.evaluator_id == evaluator_id for ev in uow.evaluations.of_calibration(session_id)):
        raise Conflict(f"{evaluator_id!r} has already scored calibration session {session_id}")
    evaluations.create_evaluation(uow, evaluations.NewEvaluation(
        call_id=cal.call_id, agent_id=cal.agent_id, evaluator_id=evaluator_id, form_id=cal.form_id,
        form_version=cal.form_version, answers=answers, comments=comments, submit=True,
        calibration_session_id=session_id), now)


def calibration_report(uow: UnitOfWork, session_id: str) -> tuple[CalibrationSessionRow, CalibrationStats | None]:
    cal = get_session_row(uow, session_id)
    scores: dict[str, float] = {}
    for ev in uow.evaluations.of_calibration(session_id):
        if Status(ev.status) in SCORED:
            scores[ev.evaluator_id] = ev.score
    if not scores or (cal.reference_evaluator is not None and cal.reference_evaluator not in scores):
        return cal, None
    return cal, calibration_stats(scores, cal.reference_evaluator)
