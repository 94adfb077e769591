"""Calibration sessions: open one, add an evaluator's score, read the agreement figures."""

from __future__ import annotations

from fastapi import APIRouter

from callstream_core.db import now
from callstream_qa.entrypoints.dependencies import Caller, as_qa, as_qa_manager, as_uow
from callstream_qa.entrypoints.schemas import CalibrationIn, CalibrationScoreIn, CalibrationSessionOut
from callstream_qa.service_layer import calibration
from callstream_qa.service_layer.unit_of_work import UnitOfWork

router = APIRouter(tags=["calibration"])


def calibration_json(uow: UnitOfWork, session_id: str) -> CalibrationSessionOut:
    cal, stats = calibration.calibration_report(uow, session_id)
    return CalibrationSessionOut.model_validate({
        "session_id": cal.session_id, "call_id": cal.call_id, "agent_id": cal.agent_id, "form_id": cal.form_id,
        "form_version": cal.form_version, "reference_evaluator": cal.reference_evaluator,
        "stats": None if stats is None else {
            "consensus": stats.consensus, "spread": stats.spread, "stdev": stats.stdev,
            "deviations": stats.deviations, "mean_abs_deviation": stats.mean_abs_deviation}})


@router.post("/calibration-sessions", status_code=201)
def create_session(body: CalibrationIn, caller: Caller = as_qa, uow: UnitOfWork = as_uow) -> CalibrationSessionOut:
    row = calibration.open_session(uow, call_id=body.call_id, agent_id=body.agent_id, form_id=body.form_id,
                                   form_version=body.form_version, reference_evaluator=body.reference_evaluator,
                                   now=now())
    return calibration_json(uow, row.session_id)


@router.post("/calibration-sessions/{session_id}/scores", status_code=201)
def add_score(session_id: str, body: CalibrationScoreIn, caller: Caller = as_qa,
              uow: UnitOfWork = as_uow) -> CalibrationSessionOut:
    calibration.add_score(uow, session_id, body.evaluator_id or caller.person_id or caller.subject, body.answers,
                          body.comments, now())
    return calibration_json(uow, session_id)


@router.get("/calibration-sessions/{session_id}")
def read_session(session_id: str, caller: Caller = as_qa_manager, uow: UnitOfWork = as_uow) -> CalibrationSessionOut:
    return calibration_json(uow, session_id)
