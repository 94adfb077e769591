"""Calibration sessions: open one, add an evaluator's score, read the agreement figures."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter
from sqlalchemy import select
from sqlalchemy.orm import Session

from callstream_core.db import now
from callstream_qa.adapters.orm import CalibrationSessionRow, EvaluationRow
from callstream_qa.entrypoints.dependencies import Caller, as_db, as_qa, as_qa_manager, as_uow
from callstream_qa.entrypoints.schemas import CalibrationIn, CalibrationScoreIn
from callstream_qa.service_layer import calibration, common, evaluations, forms
from callstream_qa.service_layer.unit_of_work import UnitOfWork

router = APIRouter(tags=["calibration"])


def calibration_json(s: Session, session_id: str) -> dict[str, Any]:
    cal, stats = calibration.calibration_report(s, session_id)
    return {"session_id": cal.session_id, "call_id": cal.call_id, "agent_id": cal.agent_id,
            "form_id": cal.form_id, "form_version": cal.form_version,
            "reference_evaluator": cal.reference_evaluator,
            "stats": None if stats is None else {
                "consensus": stats.consensus, "spread": stats.spread, "stdev": stats.stdev,
                "deviations": stats.deviations, "mean_abs_deviation": stats.mean_abs_deviation}}


@router.post("/calibration-sessions", status_code=201)
def create_session(body: CalibrationIn, caller: Caller = as_qa, s: Session = as_db,
                   uow: UnitOfWork = as_uow) -> dict[str, Any]:
    form = forms.get_form(uow, body.form_id, body.form_version)
    row = CalibrationSessionRow(session_id=uuid.uuid4().hex, call_id=body.call_id, agent_id=body.agent_id,
                                form_id=form.form_id, form_version=form.version,
                                reference_evaluator=body.reference_evaluator, created_at=now())
    s.add(row)
    s.flush()
    return calibration_json(s, row.session_id)


@router.post("/calibration-sessions/{session_id}/scores", status_code=201)
def add_score(session_id: str, body: CalibrationScoreIn, caller: Caller = as_qa,
              s: Session = as_db, uow: UnitOfWork = as_uow) -> dict[str, Any]:
    cal = calibration.get_session_row(s, session_id)
    evaluator = body.evaluator_id or caller.person_id or caller.subject
    already = s.scalar(select(EvaluationRow.evaluation_id).where(
        EvaluationRow.calibration_session_id == session_id, EvaluationRow.evaluator_id == evaluator))
    if already:
        raise common.Conflict(f"{evaluator!r} has already scored calibration session {session_id}")
    evaluations.create_evaluation(uow, evaluations.NewEvaluation(
        call_id=cal.call_id, agent_id=cal.agent_id, evaluator_id=evaluator, form_id=cal.form_id,
        form_version=cal.form_version, answers=body.answers, comments=body.comments, submit=True,
        calibration_session_id=session_id), now())
    return calibration_json(s, session_id)


@router.get("/calibration-sessions/{session_id}")
def read_session(session_id: str, caller: Caller = as_qa_manager, s: Session = as_db) -> dict[str, Any]:
    return calibration_json(s, session_id)
