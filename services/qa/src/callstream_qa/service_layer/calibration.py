"""Calibration sessions: several evaluators score the same call; their deviation from the reference (or the mean)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from callstream_qa.adapters.orm import CalibrationSessionRow, EvaluationRow
from callstream_qa.domain.calibration import CalibrationStats, calibration_stats
from callstream_qa.domain.states import SCORED
from callstream_qa.service_layer.common import NotFound


def get_session_row(session: Session, session_id: str) -> CalibrationSessionRow:
    row = session.get(CalibrationSessionRow, session_id)
    if row is None:
        raise NotFound(f"calibration session {session_id!r} not found")
    return row


def calibration_report(session: Session, session_id: str) -> tuple[CalibrationSessionRow, CalibrationStats | None]:
    cal = get_session_row(session, session_id)
    scores: dict[str, float] = {}
    for ev in session.scalars(select(EvaluationRow).where(
            EvaluationRow.calibration_session_id == session_id,
            EvaluationRow.status.in_([s.value for s in SCORED])).order_by(EvaluationRow.updated_at)):
        scores[ev.evaluator_id] = ev.score
    if not scores or (cal.reference_evaluator is not None and cal.reference_evaluator not in scores):
        return cal, None
    return cal, calibration_stats(scores, cal.reference_evaluator)
